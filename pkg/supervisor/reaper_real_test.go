package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reaperHangGuard turns a lost exit status into a failure instead of a
// hang; it measures nothing.
const reaperHangGuard = 60 * time.Second

// runRealReaper runs a reaper on the test process's real children, with
// SIGCHLD delivered to its Run loop as PID 1 does. The test process is not
// PID 1, so only its own children come to it; children other tests left
// behind are reaped as orphans, which harms nothing here.
func runRealReaper(t *testing.T) *Reaper {
	t.Helper()
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReaper(nil)
	done := make(chan struct{})
	go func() { r.Run(ctx, sigchld); close(done) }()
	t.Cleanup(func() {
		cancel()
		// Run stops only between passes; a pass stuck on a spawn lock
		// left held would keep it forever, so this wait is guarded too.
		select {
		case <-done:
		case <-time.After(reaperHangGuard):
			t.Error("the reaper's Run loop did not stop: its pass is stuck on the spawn lock")
		}
		signal.Stop(sigchld)
	})
	return r
}

// spawned is one child the test started and the status it expects.
type spawned struct {
	pid  int
	code int
	ch   <-chan Exit
}

// collect waits for every child's status. A status that will never come is
// told apart from a slow one by /proc: once a child's /proc entry is gone,
// someone has reaped it, and if its status has not arrived by then the
// reaper gave it away (as an orphan). The overall guard catches anything
// else.
func collect(t *testing.T, r *Reaper, kids []spawned) {
	t.Helper()
	deadline := time.After(reaperHangGuard)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	pending := map[int]spawned{}
	for _, k := range kids {
		pending[k.pid] = k
	}
	for len(pending) > 0 {
		for pid, k := range pending {
			select {
			case e := <-k.ch:
				if e.Pid != pid || !e.Status.Exited() || e.Code() != k.code {
					t.Errorf("pid %d: got %+v (%s), want exit %d", pid, e, e, k.code)
				}
				delete(pending, pid)
				continue
			default:
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%d of %d exit statuses never arrived within %v", len(pending), len(kids), reaperHangGuard)
		case <-tick.C:
			for pid, k := range pending {
				if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
					// Reaped. The reaper collects and dispatches in one
					// pass under the spawn lock, so once Hold has the
					// lock the status is in the channel or never will be.
					var e Exit
					var got bool
					_ = r.Hold(func() error {
						select {
						case e = <-k.ch:
							got = true
						default:
						}
						return nil
					})
					if !got {
						t.Fatalf("pid %d was reaped but its status never reached its owner (taken as an orphan)", pid)
					}
					if e.Code() != k.code {
						t.Errorf("pid %d: got %s, want exit %d", pid, e, k.code)
					}
					delete(pending, pid)
				}
			}
		}
	}
}

// Every exit status of hundreds of real, short-lived children started
// concurrently reaches its owner, exit codes included. Half are started so
// that they have exited (are zombies) before their start returns, as a
// short container may before libcontainer's Run returns: a reaper that
// registered the pid only after releasing the spawn lock would then reap
// them as orphans.
func TestReaperRealChildren(t *testing.T) {
	r := runRealReaper(t)
	const spawners, each = 6, 50 // 300 children
	var (
		mu   sync.Mutex
		kids []spawned
		wg   sync.WaitGroup
	)
	for s := 0; s < spawners; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				code := 0
				cmd := exec.Command("/bin/true")
				if i%5 == 4 {
					code = 3
					cmd = exec.Command("/bin/sh", "-c", "exit 3")
				}
				var ch <-chan Exit
				var err error
				if (s+i)%2 == 0 {
					ch, err = r.Start(cmd)
				} else {
					ch, err = r.Spawn(func() (int, error) {
						if err := cmd.Start(); err != nil {
							return 0, err
						}
						pid := cmd.Process.Pid
						// Wait for the exit without collecting it
						// (WNOWAIT): the child stays a zombie for the
						// reaper.
						var info unix.Siginfo
						for {
							err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
							if err != unix.EINTR {
								if err != nil {
									return 0, fmt.Errorf("waitid %d: %w", pid, err)
								}
								break
							}
						}
						return pid, nil
					})
				}
				if err != nil {
					t.Errorf("start: %v", err)
					continue
				}
				mu.Lock()
				kids = append(kids, spawned{pid: cmd.Process.Pid, code: code, ch: ch})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	collect(t, r, kids)
}

// A start that panics must not leave the spawn lock held: afterwards a
// real child is still started and its status still arrives.
func TestReaperSpawnPanic(t *testing.T) {
	r := runRealReaper(t)
	func() {
		defer func() {
			if p := recover(); p == nil {
				t.Fatal("the start's panic did not reach Spawn's caller")
			}
		}()
		_, _ = r.Spawn(func() (int, error) { panic("planted panic in start") })
	}()
	var (
		ch  <-chan Exit
		err error
		cmd = exec.Command("/bin/sh", "-c", "exit 3")
	)
	started := make(chan struct{})
	go func() { ch, err = r.Start(cmd); close(started) }()
	select {
	case <-started:
	case <-time.After(reaperHangGuard):
		t.Fatal("Spawn after a panicking start did not return: the spawn lock is still held")
	}
	if err != nil {
		t.Fatal(err)
	}
	collect(t, r, []spawned{{pid: cmd.Process.Pid, code: 3, ch: ch}})
}
