package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"
	"golang.org/x/sys/unix"
)

// Runner starts one run of what a Unit supervises: a container through
// libcontainer, a service's task through containerd, the containerd
// daemon itself. Restart policy, backoff, crash-loop state, time limits,
// stopping and status are the Unit's, the same for every runner.
type Runner interface {
	// Start starts a run and returns once it runs. ctx ends when the unit
	// is stopped: a runner checks it between the steps of a start it
	// cannot safely cancel halfway.
	Start(ctx context.Context) (Process, error)
}

// RunnerFunc is a function that is a Runner.
type RunnerFunc func(ctx context.Context) (Process, error)

// Start calls f.
func (f RunnerFunc) Start(ctx context.Context) (Process, error) { return f(ctx) }

// Process is one started run.
type Process interface {
	Pid() int
	// Signal sends sig to the run's main process; SIGKILL kills every
	// process of the run.
	Signal(sig unix.Signal) error
	// Wait blocks until the run has ended and everything it held is
	// released, and returns its exit code: 128+N for death by signal N,
	// UnknownExit when nobody saw it end.
	Wait() int
}

// UnknownExit is the code of a run that ended unseen (its status went
// with a containerd that died meanwhile).
const UnknownExit = 255

// Unit states, as the status command shows them.
const (
	StateWaiting   = "waiting" // not started yet
	StateStarting  = "starting"
	StateRunning   = "running"
	StateBackoff   = "backoff"   // ended, restarting after a delay
	StateCrashLoop = "crashloop" // backoff, and it keeps dying soon after each start
	StateExited    = "exited"    // ended and the policy says not to restart
	StateStopping  = "stopping"
	StateStopped   = "stopped" // stopped by keel
	StateFailed    = "failed"  // keel could not run it at all
)

// errStopped ends a run a stop overtook before it started.
var errStopped = errors.New("stopped before it ran")

// Unit supervises one thing through its Runner: starts it, waits for it,
// restarts it by its policy with backoff, kills a run that passes its time
// limit, and stops it (SIGTERM, SIGKILL after the grace period).
type Unit struct {
	// Name is how the unit is named on the console: "service web",
	// "onboot 000-dhcp", "containerd".
	Name   string
	Runner Runner
	Policy Policy
	// Grace is the time between SIGTERM and SIGKILL when stopping;
	// DefaultStopGrace if 0.
	Grace time.Duration
	// Timeout, when set, bounds each run: past it the run is killed.
	Timeout time.Duration
	// Backoff is the restart backoff; DefaultBackoff() if zero.
	Backoff Backoff
	// RetryStart says a failed start is retried (with the backoff) even
	// under the policy Never.
	RetryStart bool
	// Quiet leaves the line for each run's end to the caller (onboot
	// logs its own); starts that fail, time limits and kills are logged
	// all the same.
	Quiet bool
	Log   *slog.Logger
	// OnStart, when set, is called after each successful start.
	OnStart func(Process)
	// Health, when set, is checked on every run through the probe
	// ProbeFor makes for it. A run that turns unhealthy is stopped (and
	// so restarted) when the policy restarts failed runs.
	Health   *HealthCheck
	ProbeFor func(*HealthCheck, Process) (Probe, error)
	// OnHealth, when set, is called on every change of health.
	OnHealth func(HealthStatus)

	once    sync.Once
	mu      sync.Mutex
	st      UnitStatus
	proc    Process
	monitor *healthMonitor // of the current run
	// unhealthy is the run stopped because it turned unhealthy: its end
	// is a failure whatever its exit code (a clean exit on SIGTERM too).
	unhealthy Process
	stopping  bool
	killing   bool          // the grace period is over: SIGKILL whatever starts
	stop      chan struct{} // closed when the unit is to stop
	done      chan struct{} // closed when Run has returned
	started   chan struct{} // closed after the first start attempt
	startedO  sync.Once
}

// UnitStatus is a unit as the status command shows it.
type UnitStatus struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Pid       int       `json:"pid,omitempty"`
	Restarts  int       `json:"restarts"`
	Policy    string    `json:"policy"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// LastExit is the exit code of the last run (128+N for signal N),
	// valid when LastExitAt is set.
	LastExit   int       `json:"lastExit"`
	LastExitAt time.Time `json:"lastExitAt,omitzero"`
	// NextStart is when a unit in backoff starts again.
	NextStart time.Time `json:"nextStart,omitzero"`
	// CrashLooping is set while the unit keeps dying soon after each
	// start, whatever its state, until it stays up for the backoff's
	// reset time.
	CrashLooping bool   `json:"crashLooping,omitempty"`
	Error        string `json:"error,omitempty"`
	// Health is the current run's, for a unit with a health check.
	Health *HealthStatus `json:"health,omitempty"`
	// WaitingFor says what a unit not started yet waits for.
	WaitingFor string `json:"waitingFor,omitempty"`
}

// Outcome is how a unit's last run ended, when Run returns.
type Outcome struct {
	// Code is the last run's exit code; valid when Err is nil.
	Code int
	// Err is set when the last run could not be started at all.
	Err error
	// TimedOut is set when the last run was killed at its time limit.
	TimedOut bool
	// Stopped is set when the unit was stopped (Stop, or Run's ctx).
	Stopped bool
	// Unhealthy is set when the last run was stopped for failing its
	// health check.
	Unhealthy bool
	Duration  time.Duration
}

// Success reports whether the last run ran and exited 0.
func (o Outcome) Success() bool { return o.Err == nil && !o.TimedOut && o.Code == 0 }

func (u *Unit) init() {
	u.once.Do(func() {
		u.stop = make(chan struct{})
		u.done = make(chan struct{})
		u.started = make(chan struct{})
		if u.Log == nil {
			u.Log = slog.New(slog.DiscardHandler)
		}
		if u.Grace == 0 {
			u.Grace = DefaultStopGrace
		}
		if u.Backoff.Initial == 0 {
			u.Backoff = DefaultBackoff()
		}
		if u.Policy == "" {
			u.Policy = Never
		}
		u.st = UnitStatus{Name: u.Name, State: StateWaiting, Policy: string(u.Policy)}
	})
}

// Started is closed once the first start has been tried (or the unit was
// stopped before it).
func (u *Unit) Started() <-chan struct{} { u.init(); return u.started }

// Done is closed when Run has returned.
func (u *Unit) Done() <-chan struct{} { u.init(); return u.done }

// Status returns the unit's status now.
func (u *Unit) Status() UnitStatus {
	u.init()
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.st
	if st.State == StateRunning && st.CrashLooping && time.Since(st.StartedAt) >= u.Backoff.Reset {
		st.CrashLooping = false
	}
	if u.monitor != nil {
		h := u.monitor.status()
		st.Health = &h
	}
	return st
}

// Fail records that the unit cannot run at all (its bundle could not be
// prepared), so that status says why; Run must not be called then.
func (u *Unit) Fail(err error) {
	u.init()
	u.Log.Error(u.Name+" failed", "err", err)
	u.update(func(st *UnitStatus) { st.State, st.Error = StateFailed, err.Error() })
	u.markStarted()
	close(u.done)
}

func (u *Unit) update(fn func(st *UnitStatus)) {
	u.mu.Lock()
	fn(&u.st)
	u.mu.Unlock()
}

func (u *Unit) markStarted() { u.startedO.Do(func() { close(u.started) }) }

func (u *Unit) isStopping() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopping
}

// Run is the unit's whole life: start, wait, and restart by its policy
// until it should not or the unit is stopped. Ending ctx stops the unit
// as Stop does. Run is called once.
func (u *Unit) Run(ctx context.Context) Outcome {
	u.init()
	defer close(u.done)
	defer u.markStarted()
	stopCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	goroutine.Go(u.Log, u.Name+" stop", false, func() {
		select {
		case <-ctx.Done():
			_ = u.Stop(context.Background())
		case <-u.stop:
		case <-stopCtx.Done():
			return
		}
		cancel()
	})
	bo := u.Backoff
	for {
		if u.isStopping() {
			u.update(func(st *UnitStatus) { st.State, st.NextStart = StateStopped, time.Time{} })
			return Outcome{Stopped: true, Err: errStopped}
		}
		u.update(func(st *UnitStatus) { st.State, st.WaitingFor = StateStarting, "" })
		out, up := u.runOnce(stopCtx)
		u.markStarted()
		if u.isStopping() {
			u.update(func(st *UnitStatus) { st.State, st.Pid = StateStopped, 0 })
			if out.Err == nil && !u.Quiet {
				u.Log.Info(u.Name+" stopped", "exit", exitString(out.Code))
			}
			out.Stopped = true
			return out
		}
		retry := out.Err == nil && (u.Policy.ShouldRestart(out.Code) || out.Unhealthy && u.Policy != Never) ||
			out.Err != nil && (u.RetryStart || u.Policy != Never)
		if !retry {
			u.update(func(st *UnitStatus) { st.State = StateExited })
			if out.Err != nil {
				u.update(func(st *UnitStatus) { st.State = StateFailed })
				if !u.Quiet {
					u.Log.Error(u.Name+" start failed", "err", out.Err)
				}
			} else if !u.Quiet {
				u.Log.Info(u.Name+" exited", "exit", exitString(out.Code), "uptime", up.Round(time.Millisecond))
			}
			return out
		}
		delay := bo.Next(up)
		looping := bo.CrashLooping()
		state := StateBackoff
		if looping {
			state = StateCrashLoop
		}
		u.update(func(st *UnitStatus) {
			st.State, st.CrashLooping = state, looping
			st.NextStart = time.Now().Add(delay)
		})
		switch {
		case out.Err != nil:
			u.Log.Warn(u.Name+" start failed, retrying", "err", out.Err, "retry", delay.Round(time.Millisecond))
		case looping:
			u.Log.Warn(u.Name+" crash-looping", "restarts", u.Status().Restarts, "exit", exitString(out.Code), "retry", delay.Round(time.Millisecond))
		case out.Code != 0:
			u.Log.Warn(u.Name+" exited, restarting", "exit", exitString(out.Code), "uptime", up.Round(time.Millisecond), "retry", delay.Round(time.Millisecond))
		default:
			u.Log.Info(u.Name+" exited, restarting", "exit", exitString(out.Code), "uptime", up.Round(time.Millisecond), "retry", delay.Round(time.Millisecond))
		}
		select {
		case <-u.stop:
			continue // the loop's first check ends it
		case <-time.After(delay):
		}
		u.update(func(st *UnitStatus) { st.Restarts++; st.NextStart = time.Time{} })
	}
}

// runOnce starts one run and waits for its end, killing it at the time
// limit.
func (u *Unit) runOnce(ctx context.Context) (Outcome, time.Duration) {
	start := time.Now()
	proc, err := u.Runner.Start(ctx)
	if err != nil {
		u.update(func(st *UnitStatus) { st.Error, st.Pid = err.Error(), 0 })
		return Outcome{Err: err, Duration: time.Since(start)}, 0
	}
	running := time.Now()
	u.mu.Lock()
	u.proc = proc
	u.st.State, u.st.Pid, u.st.StartedAt, u.st.Error = StateRunning, proc.Pid(), running, ""
	stopping, killing := u.stopping, u.killing
	u.mu.Unlock()
	u.markStarted()
	if !u.Quiet {
		u.Log.Info(u.Name+" running", "pid", proc.Pid())
	}
	if u.OnStart != nil {
		u.OnStart(proc)
	}
	if u.Health != nil && u.ProbeFor != nil {
		hctx, hcancel := context.WithCancel(context.Background())
		defer hcancel()
		u.watchHealth(hctx, proc)
	}
	// A stop that came while it was starting (a start can take seconds
	// under emulation) gets what it would have got.
	switch {
	case killing:
		_ = proc.Signal(unix.SIGKILL)
	case stopping:
		_ = proc.Signal(unix.SIGTERM)
	}
	var timedOut atomic.Bool
	if u.Timeout > 0 {
		t := time.AfterFunc(u.Timeout, func() {
			timedOut.Store(true)
			u.Log.Error(u.Name+" timed out, killing it", "timeout", u.Timeout)
			_ = proc.Signal(unix.SIGKILL)
		})
		defer t.Stop()
	}
	code := proc.Wait()
	up := time.Since(running)
	u.mu.Lock()
	unhealthy := u.unhealthy == proc
	u.proc, u.monitor, u.unhealthy = nil, nil, nil
	u.st.Pid, u.st.LastExit, u.st.LastExitAt = 0, code, time.Now()
	u.mu.Unlock()
	return Outcome{Code: code, TimedOut: timedOut.Load() && up >= u.Timeout, Unhealthy: unhealthy, Duration: time.Since(start)}, up
}

// watchHealth checks the health of the run proc until ctx is done.
func (u *Unit) watchHealth(ctx context.Context, proc Process) {
	probe, err := u.ProbeFor(u.Health, proc)
	if err != nil {
		u.Log.Warn(u.Name+": no health check", "err", err)
		return
	}
	m := newHealthMonitor(u.Health, probe, nil, func(st HealthStatus) { u.healthChanged(proc, st) })
	u.mu.Lock()
	u.monitor = m
	u.mu.Unlock()
	if u.OnHealth != nil {
		u.OnHealth(m.status())
	}
	goroutine.Go(u.Log, u.Name+" health", false, func() { m.run(ctx) })
}

// healthChanged logs a change of health and, when the run turned
// unhealthy and the policy restarts failed runs, stops the run: SIGTERM,
// SIGKILL after the grace period. Run then restarts it.
func (u *Unit) healthChanged(proc Process, st HealthStatus) {
	if u.OnHealth != nil {
		u.OnHealth(st)
	}
	if st.State != HealthUnhealthy {
		u.Log.Info(u.Name+" "+st.State, "output", st.LastOutput)
		return
	}
	if u.Policy == Never || u.isStopping() {
		u.Log.Warn(u.Name+" unhealthy", "failing", st.FailingStreak, "output", st.LastOutput)
		return
	}
	u.Log.Warn(u.Name+" unhealthy, restarting", "failing", st.FailingStreak, "output", st.LastOutput)
	u.mu.Lock()
	u.unhealthy = proc
	u.mu.Unlock()
	_ = proc.Signal(unix.SIGTERM)
	grace := u.Grace
	goroutine.Go(u.Log, u.Name+" unhealthy kill", false, func() {
		time.Sleep(grace)
		u.mu.Lock()
		same := u.proc == proc
		u.mu.Unlock()
		if same {
			_ = proc.Signal(unix.SIGKILL)
		}
	})
}

// setWaiting records what the unit waits for before its first start.
func (u *Unit) setWaiting(reason string) {
	u.init()
	u.update(func(st *UnitStatus) { st.WaitingFor = reason })
}

// Stop stops the unit: no more restarts, SIGTERM to the running process,
// SIGKILL to all of it after the grace period or when ctx is done. It
// returns when Run has returned.
func (u *Unit) Stop(ctx context.Context) error {
	grace := u.cancel()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-u.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	u.mu.Lock()
	u.killing = true
	proc := u.proc
	u.mu.Unlock()
	if proc != nil {
		u.Log.Warn(u.Name+" did not stop in time, killing", "grace", grace)
		_ = proc.Signal(unix.SIGKILL)
	}
	// A run still starting is killed as soon as it exists (runOnce).
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	return fmt.Errorf("%s: still running after SIGKILL", u.Name)
}

// cancel asks the unit to stop without waiting: no more restarts, and
// SIGTERM to the running process. It returns the grace period.
func (u *Unit) cancel() time.Duration {
	u.init()
	u.mu.Lock()
	if !u.stopping {
		u.stopping = true
		close(u.stop)
		if u.st.State == StateRunning {
			u.st.State = StateStopping
		}
	}
	proc, grace := u.proc, u.Grace
	u.mu.Unlock()
	if proc == nil {
		return grace
	}
	if termIsNoOp(proc.Pid()) {
		u.Log.Warn(u.Name+" cannot get SIGTERM (its namespace's init, with no handler): killing it now", "pid", proc.Pid())
		u.mu.Lock()
		u.killing = true
		u.mu.Unlock()
		_ = proc.Signal(unix.SIGKILL)
		return grace
	}
	_ = proc.Signal(unix.SIGTERM)
	return grace
}

// exitString is an exit code the way the console shows it: "3", or
// "signal:SIGKILL" for 128+9.
func exitString(code int) string {
	if code > 128 && code < 128+65 {
		if name := unix.SignalName(unix.Signal(code - 128)); name != "" {
			return "signal:" + name
		}
	}
	return fmt.Sprint(code)
}
