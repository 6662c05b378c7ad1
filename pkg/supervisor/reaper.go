// Package supervisor runs what PID 1 runs once the machine is set up. Its
// rooms: the Reaper, the one collector of child exit statuses, through
// which every process is started; Preparer, the one preparation of a
// bundle; the Runners (libcontainer for onboot and onshutdown, containerd
// tasks for services, the containerd daemon itself) and the Unit that
// wraps any of them with restart policy, backoff, time limits, stopping
// and status; Onboot and Services, which run bundles as units; System,
// the boot phases in order; and Shutdown.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// waitFunc collects one exited child without blocking: pid 0 means children
// exist but none has exited; unix.ECHILD means there are no children.
type waitFunc func() (pid int, status unix.WaitStatus, err error)

func wait4Any() (int, unix.WaitStatus, error) {
	var ws unix.WaitStatus
	pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
	return pid, ws, err
}

// Reaper is the only code in PID 1 that calls wait: a child's exit status
// can be collected once, so two waiters would steal from each other.
//
// Whoever starts a process does so through Spawn, which holds the spawn
// lock across the start and registers the new pid before releasing it. The
// reaper takes the same lock for each pass, so a child can never be reaped
// before its owner has registered it, and the status of a registered pid is
// handed over on a buffered channel even if the owner is not reading yet.
// Pids nobody registered are orphans re-parented to PID 1; they are only
// counted.
//
// Holding the lock across the whole start also covers libcontainer, which
// waits for its own bootstrap processes inside Run: while it does, no
// wait4(-1) may run, or it would steal their statuses and break the start.
type Reaper struct {
	wait waitFunc
	log  *slog.Logger

	spawn   sync.Mutex        // held across every start and every reaping pass
	waiters map[int]chan Exit // guarded by spawn

	kick    chan struct{}
	orphans atomic.Uint64
}

// NewReaper returns a reaper that collects children with wait4(-1).
// log may be nil.
func NewReaper(log *slog.Logger) *Reaper {
	return newReaper(wait4Any, log)
}

func newReaper(wait waitFunc, log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reaper{
		wait:    wait,
		log:     log,
		waiters: make(map[int]chan Exit),
		kick:    make(chan struct{}, 1),
	}
}

// Run reaps whenever SIGCHLD arrives on sigchld (or a spawn asks for a
// pass) until ctx is done. SIGCHLD is coalesced by the kernel, so each pass
// collects every exited child, not just one.
func (r *Reaper) Run(ctx context.Context, sigchld <-chan os.Signal) {
	for {
		r.Reap()
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		case <-r.kick:
		}
	}
}

// Reap collects every child that has exited so far and hands each status to
// its owner. It reports whether any child is still alive (false once the
// kernel says there are no children at all).
func (r *Reaper) Reap() (children bool) {
	r.spawn.Lock()
	defer r.spawn.Unlock()
	for {
		pid, status, err := r.wait()
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return false
		case err != nil:
			r.log.Warn("reaper: wait4 failed", "err", err)
			return true
		case pid <= 0:
			return true
		}
		exit := Exit{Pid: pid, Status: status}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- exit // buffered, never blocks
			continue
		}
		r.orphans.Add(1)
		r.log.Debug("reaped orphan", "pid", pid, "exit", exit)
	}
}

// Spawn runs start with reaping held off, registers the pid it returns and
// gives back the channel that will receive that pid's exit status. start
// must create exactly one child to be waited for; any other children it
// creates and waits for itself (as libcontainer does) are safe from the
// reaper for as long as start runs.
func (r *Reaper) Spawn(start func() (pid int, err error)) (<-chan Exit, error) {
	// A kick after every spawn, however it ended, and after the lock is
	// released (spawnLocked's deferred unlock runs first): a SIGCHLD that
	// arrived while the lock was held has already been consumed by a
	// reaper pass blocked on the lock or is still queued, so a pass must
	// run after the registration; and a start that failed or panicked may
	// have left children of its own behind.
	defer r.poke()
	return r.spawnLocked(start)
}

// spawnLocked is Spawn's part under the spawn lock. The unlock is deferred
// so that a panic in start cannot leave the lock held: nothing would be
// reaped again and WaitChildless would hang shutdown. The pid is
// registered before the deferred unlock runs.
func (r *Reaper) spawnLocked(start func() (int, error)) (<-chan Exit, error) {
	r.spawn.Lock()
	defer r.spawn.Unlock()
	pid, err := start()
	if err != nil {
		return nil, err
	}
	if pid <= 0 {
		return nil, fmt.Errorf("spawn: started process has no pid (%d)", pid)
	}
	ch := make(chan Exit, 1)
	r.waiters[pid] = ch
	return ch, nil
}

// Start starts cmd through Spawn. The caller takes the exit status from
// the channel and may then call cmd.Wait only to flush its I/O; that Wait
// finds the process already reaped and its error is to be ignored.
func (r *Reaper) Start(cmd *exec.Cmd) (<-chan Exit, error) {
	return r.Spawn(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
}

// Hold runs fn with reaping held off, for library calls that wait for
// processes of their own (e.g. libcontainer's Destroy or Signal paths).
func (r *Reaper) Hold(fn func() error) error {
	r.spawn.Lock()
	defer func() {
		r.spawn.Unlock()
		r.poke()
	}()
	return fn()
}

// WaitChildless reaps until PID 1 has no children left or ctx is done;
// it returns ctx's error in the latter case. It polls, because the last
// SIGCHLD may have been consumed by Run already.
func (r *Reaper) WaitChildless(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for r.Reap() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Orphans is how many children nobody registered have been reaped.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

func (r *Reaper) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}
