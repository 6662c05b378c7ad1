package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeRunner hands out scripted runs: each Start takes the next entry of
// plan, a start error or a process ending with a code when told to (or
// when signalled, as a real one would).
type fakeRunner struct {
	mu      sync.Mutex
	plan    []fakeRun
	starts  int
	procs   []*fakeProc
	started chan *fakeProc
}

type fakeRun struct {
	err        error
	code       int  // the code it exits with on its own (exit())
	ignoreTerm bool // SIGTERM does nothing, as for a shell as PID 1 of its namespace
	cleanTerm  bool // SIGTERM makes it exit 0, as a service that traps it
}

type fakeProc struct {
	run     fakeRun
	pid     int
	mu      sync.Mutex
	signals []unix.Signal
	end     chan int
	once    sync.Once
}

func newFakeRunner(plan ...fakeRun) *fakeRunner {
	return &fakeRunner{plan: plan, started: make(chan *fakeProc, 100)}
}

func (f *fakeRunner) Start(ctx context.Context) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	run := fakeRun{}
	if f.starts < len(f.plan) {
		run = f.plan[f.starts]
	}
	f.starts++
	if run.err != nil {
		return nil, run.err
	}
	p := &fakeProc{run: run, pid: 1000 + f.starts, end: make(chan int, 1)}
	f.procs = append(f.procs, p)
	f.started <- p
	return p, nil
}

func (f *fakeRunner) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Signal(sig unix.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	switch {
	case sig == unix.SIGTERM && p.run.cleanTerm:
		p.exit(0)
	case sig == unix.SIGKILL || sig == unix.SIGTERM && !p.run.ignoreTerm:
		p.exit(128 + int(sig))
	}
	return nil
}
func (p *fakeProc) exit(code int) { p.once.Do(func() { p.end <- code }) }
func (p *fakeProc) Wait() int     { return <-p.end }
func (p *fakeProc) got() []unix.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]unix.Signal(nil), p.signals...)
}

// next waits for the runner's next start.
func (f *fakeRunner) next(t *testing.T) *fakeProc {
	t.Helper()
	select {
	case p := <-f.started:
		return p
	case <-time.After(time.Minute):
		t.Fatal("no start")
		return nil
	}
}

// running waits until the unit has taken p as its run: the runner hands
// p over before the unit records it, and a stop in between finds no
// process to send SIGTERM to.
func running(t *testing.T, u *Unit, p *fakeProc) {
	t.Helper()
	eventually(t, "the run recorded", func() bool { return u.Status().Pid == p.pid })
}

var fastBackoff = Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Reset: time.Hour}

func runUnit(u *Unit) <-chan Outcome {
	out := make(chan Outcome, 1)
	go func() { out <- u.Run(context.Background()) }()
	return out
}

func outcome(t *testing.T, c <-chan Outcome) Outcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
		return Outcome{}
	}
}

func TestUnitOnFailureRestartsUntilSuccess(t *testing.T) {
	f := newFakeRunner()
	u := &Unit{Name: "svc", Runner: f, Policy: OnFailure, Backoff: fastBackoff}
	done := runUnit(u)
	for _, code := range []int{3, 1, 0} {
		f.next(t).exit(code)
	}
	o := outcome(t, done)
	if o.Code != 0 || o.Err != nil || o.Stopped {
		t.Fatalf("outcome %+v, want a clean exit", o)
	}
	st := u.Status()
	if st.State != StateExited || st.Restarts != 2 || st.LastExit != 0 || f.startCount() != 3 {
		t.Fatalf("status %+v after %d starts; want exited, 2 restarts, 3 starts", st, f.startCount())
	}
}

func TestUnitPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		code   int
		starts int // before Run returns, when each run exits with code
	}{
		{Never, 3, 1},
		{Never, 0, 1},
		{OnFailure, 0, 1},
		{Always, 0, 4},
		{Always, 2, 4},
	} {
		f := newFakeRunner()
		u := &Unit{Name: "svc", Runner: f, Policy: tc.policy, Backoff: fastBackoff}
		done := runUnit(u)
		for i := 0; i < tc.starts; i++ {
			f.next(t).exit(tc.code)
		}
		if tc.starts == 4 { // always: still going; a stop ends it
			f.next(t)
			if err := u.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if o := outcome(t, done); !o.Stopped {
				t.Errorf("%s: outcome %+v, want stopped", tc.policy, o)
			}
			continue
		}
		if o := outcome(t, done); o.Code != tc.code {
			t.Errorf("%s exit %d: outcome %+v", tc.policy, tc.code, o)
		}
		if f.startCount() != tc.starts {
			t.Errorf("%s exit %d: %d starts, want %d", tc.policy, tc.code, f.startCount(), tc.starts)
		}
	}
}

// A failed start is retried with the backoff (containerd's first start,
// a service whose containerd is down), and counts as a restart.
func TestUnitRetriesFailedStarts(t *testing.T) {
	boom := errors.New("socket in use")
	f := newFakeRunner(fakeRun{err: boom}, fakeRun{err: boom}, fakeRun{})
	u := &Unit{Name: "containerd", Runner: f, Policy: Always, RetryStart: true, Backoff: fastBackoff}
	done := runUnit(u)
	p := f.next(t) // the third start works
	// The status follows the start.
	deadline := time.Now().Add(time.Minute)
	for u.Status().State != StateRunning && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := u.Status(); st.State != StateRunning || st.Restarts != 2 || st.Pid != p.pid || st.Error != "" {
		t.Fatalf("status %+v", st)
	}
	_ = u.Stop(context.Background())
	outcome(t, done)

	// Under Never without RetryStart (onboot), a failed start is final.
	f = newFakeRunner(fakeRun{err: boom})
	u = &Unit{Name: "onboot 000-x", Runner: f, Policy: Never}
	o := outcome(t, runUnit(u))
	if !errors.Is(o.Err, boom) || f.startCount() != 1 || u.Status().State != StateFailed {
		t.Fatalf("onboot start failure: outcome %+v, %d starts, status %+v", o, f.startCount(), u.Status())
	}
}

func TestUnitCrashLoop(t *testing.T) {
	f := newFakeRunner()
	u := &Unit{Name: "svc", Runner: f, Policy: Always, Backoff: Backoff{Initial: time.Millisecond, Max: time.Hour, Reset: time.Hour}}
	done := runUnit(u)
	for range 4 {
		f.next(t).exit(1)
	}
	// The delays went 1, 2, 4, 8 ms: now past 4×Initial, it is looping.
	deadline := time.Now().Add(time.Minute)
	for u.Status().State != StateCrashLoop && u.Status().State != StateRunning && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p := f.next(t)
	if st := u.Status(); !st.CrashLooping || st.Restarts != 4 {
		t.Fatalf("status %+v, want crash-looping with 4 restarts", st)
	}
	_ = u.Stop(context.Background())
	if o := outcome(t, done); !o.Stopped {
		t.Fatalf("outcome %+v", o)
	}
	if sigs := p.got(); len(sigs) == 0 || sigs[0] != unix.SIGTERM {
		t.Fatalf("signals %v, want SIGTERM first", sigs)
	}
}

// A process that ignores SIGTERM gets SIGKILL once the grace period is
// over, and the stop is the unit's last word: no restart.
func TestUnitStopKillsAfterGrace(t *testing.T) {
	f := newFakeRunner(fakeRun{ignoreTerm: true})
	var logged syncBuffer
	u := &Unit{Name: "service stubborn", Runner: f, Policy: Always, Grace: 10 * time.Millisecond,
		Backoff: fastBackoff, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	done := runUnit(u)
	p := f.next(t)
	running(t, u, p)
	if err := u.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := outcome(t, done)
	if got := p.got(); len(got) != 2 || got[0] != unix.SIGTERM || got[1] != unix.SIGKILL {
		t.Fatalf("signals %v, want SIGTERM then SIGKILL", got)
	}
	if !o.Stopped || o.Code != 128+9 || f.startCount() != 1 || u.Status().State != StateStopped {
		t.Fatalf("outcome %+v, %d starts, status %+v", o, f.startCount(), u.Status())
	}
	if !contains(logged.String(), "service stubborn did not stop in time, killing") {
		t.Fatalf("log: %s", logged.String())
	}
}

// A stop that comes while a start is in progress reaches the process
// once it exists.
func TestUnitStopDuringStart(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{})
	inner := newFakeRunner()
	var u *Unit
	r := RunnerFunc(func(ctx context.Context) (Process, error) {
		close(entered)
		<-gate
		return inner.Start(ctx)
	})
	u = &Unit{Name: "svc", Runner: r, Policy: Always, Grace: time.Hour}
	done := runUnit(u)
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- u.Stop(context.Background()) }()
	for !u.isStopping() {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	p := inner.next(t)
	o := outcome(t, done)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := p.got(); len(got) == 0 || got[0] != unix.SIGTERM || !o.Stopped || inner.startCount() != 1 {
		t.Fatalf("signals %v, outcome %+v, %d starts", got, o, inner.startCount())
	}
}

func TestUnitTimeout(t *testing.T) {
	f := newFakeRunner(fakeRun{ignoreTerm: true})
	u := &Unit{Name: "onboot 001-hang", Runner: f, Policy: Never, Timeout: 5 * time.Millisecond}
	o := outcome(t, runUnit(u))
	if !o.TimedOut || o.Code != 128+9 || o.Success() {
		t.Fatalf("outcome %+v, want killed at its time limit", o)
	}
	// One that ends in time is not timed out.
	f = newFakeRunner()
	u = &Unit{Name: "onboot 002-quick", Runner: f, Policy: Never, Timeout: time.Hour}
	done := runUnit(u)
	f.next(t).exit(0)
	if o := outcome(t, done); o.TimedOut || !o.Success() {
		t.Fatalf("outcome %+v", o)
	}
}

// Ending Run's context stops the unit as Stop does (a shutdown during
// onboot): SIGTERM, then SIGKILL after the grace period.
func TestUnitContextStops(t *testing.T) {
	f := newFakeRunner(fakeRun{ignoreTerm: true})
	u := &Unit{Name: "onboot 000-sleep", Runner: f, Policy: Never, Grace: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Outcome, 1)
	go func() { out <- u.Run(ctx) }()
	p := f.next(t)
	running(t, u, p)
	cancel()
	o := outcome(t, out)
	if !o.Stopped || o.Code != 128+9 {
		t.Fatalf("outcome %+v", o)
	}
	if got := p.got(); len(got) != 2 || got[0] != unix.SIGTERM || got[1] != unix.SIGKILL {
		t.Fatalf("signals %v", got)
	}
}

func TestUnitFail(t *testing.T) {
	u := &Unit{Name: "service broken"}
	u.Fail(errors.New("read bundle file: no such file"))
	<-u.Started()
	<-u.Done()
	if st := u.Status(); st.State != StateFailed || st.Error == "" {
		t.Fatalf("status %+v", st)
	}
}

func TestExitCodeString(t *testing.T) {
	for code, want := range map[int]string{0: "0", 3: "3", 137: "signal:SIGKILL", 143: "signal:SIGTERM", 255: "255"} {
		if got := exitString(code); got != want {
			t.Errorf("exitString(%d) = %q, want %q", code, got, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
