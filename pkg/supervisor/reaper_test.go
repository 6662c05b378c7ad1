package supervisor

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeChildren stands in for the kernel's list of exited children.
type fakeChildren struct {
	mu     sync.Mutex
	exited []Exit
	alive  int // children not yet exited; 0 and none exited means ECHILD
	calls  int
}

func (f *fakeChildren) exit(pid, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exited = append(f.exited, Exit{Pid: pid, Status: unix.WaitStatus(code << 8)})
	if f.alive > 0 {
		f.alive--
	}
}

func (f *fakeChildren) wait() (int, unix.WaitStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.exited) > 0 {
		e := f.exited[0]
		f.exited = f.exited[1:]
		return e.Pid, e.Status, nil
	}
	if f.alive == 0 {
		return 0, 0, unix.ECHILD
	}
	return 0, 0, nil
}

func (f *fakeChildren) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestReaperDispatchesRegisteredAndCountsOrphans(t *testing.T) {
	f := &fakeChildren{alive: 2}
	r := newReaper(f.wait, nil)
	ch, err := r.Spawn(func() (int, error) { return 100, nil })
	if err != nil {
		t.Fatal(err)
	}
	f.exit(555, 0) // an orphan nobody registered
	f.exit(100, 3)
	if r.Reap() {
		t.Error("Reap reported children left after all exited")
	}
	select {
	case e := <-ch:
		if e.Pid != 100 || e.Code() != 3 || e.String() != "3" {
			t.Errorf("got %+v (%s), want pid 100 exit 3", e, e)
		}
	default:
		t.Fatal("status of registered pid was not delivered")
	}
	if n := r.Orphans(); n != 1 {
		t.Errorf("orphans = %d, want 1", n)
	}
}

// The owner may read its channel long after the reaper collected the
// status; it must still be there, and the reaper must not block on it.
func TestReaperKeepsStatusUntilOwnerReads(t *testing.T) {
	f := &fakeChildren{alive: 3}
	r := newReaper(f.wait, nil)
	var chans []<-chan Exit
	for pid := 10; pid < 13; pid++ {
		ch, err := r.Spawn(func() (int, error) { return pid, nil })
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
		f.exit(pid, pid)
	}
	done := make(chan struct{})
	go func() { r.Reap(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Reap blocked on an unread channel")
	}
	for i, ch := range chans {
		if e := <-ch; e.Pid != 10+i || e.Code() != 10+i {
			t.Errorf("channel %d got %+v", i, e)
		}
	}
}

// No wait may happen while a start is in progress: libcontainer waits for
// its own bootstrap children inside Run.
func TestReaperHoldsOffDuringSpawn(t *testing.T) {
	f := &fakeChildren{alive: 1}
	r := newReaper(f.wait, nil)
	reaped := make(chan struct{})
	_, err := r.Spawn(func() (int, error) {
		go func() { r.Reap(); close(reaped) }()
		time.Sleep(50 * time.Millisecond)
		if n := f.callCount(); n != 0 {
			t.Errorf("wait called %d times while a spawn held the lock", n)
		}
		return 7, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-reaped
	if f.callCount() == 0 {
		t.Error("reaper did not run after the spawn released the lock")
	}
}

func TestReaperRunReapsOnSignal(t *testing.T) {
	f := &fakeChildren{alive: 1}
	r := newReaper(f.wait, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	go r.Run(ctx, sig)
	ch, _ := r.Spawn(func() (int, error) { return 42, nil })
	f.exit(42, 1)
	sig <- unix.SIGCHLD
	select {
	case e := <-ch:
		if e.Code() != 1 {
			t.Errorf("exit %v, want 1", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no status after SIGCHLD")
	}
}

func TestWaitChildless(t *testing.T) {
	f := &fakeChildren{alive: 1}
	r := newReaper(f.wait, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := r.WaitChildless(ctx, time.Millisecond); err == nil {
		t.Fatal("WaitChildless returned nil with a child alive")
	}
	f.exit(9, 0)
	if err := r.WaitChildless(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestExitString(t *testing.T) {
	for _, tc := range []struct {
		status unix.WaitStatus
		want   string
		code   int
	}{
		{0, "0", 0},
		{3 << 8, "3", 3},
		{unix.WaitStatus(unix.SIGKILL), "signal:SIGKILL", 137},
		{unix.WaitStatus(unix.SIGTERM), "signal:SIGTERM", 143},
	} {
		e := Exit{Status: tc.status}
		if e.String() != tc.want || e.Code() != tc.code {
			t.Errorf("status %#x: got %q/%d, want %q/%d", int(tc.status), e.String(), e.Code(), tc.want, tc.code)
		}
	}
}
