package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"github.com/keel-os/keel/pkg/goroutine"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ClientSource hands out the current containerd client and a channel that
// is closed when it is replaced (containerd restarted). *Containerd is one.
type ClientSource interface {
	Client() (*containerd.Client, <-chan struct{})
}

// taskRunner runs a prepared service bundle as a containerd task.
type taskRunner struct {
	containerd ClientSource
	id         string
	namespace  string
	leases     *serviceLeases // nil: the client makes a lease per create
	p          *Prepared
	out        io.Writer
	log        *slog.Logger
	// runtime is Services.Runtime: the shim's OCI runtime binary, "" for
	// its default.
	runtime string
	// leaveOnExit, when set and true, says the machine is going down: a
	// run that ends then keeps its task and container (taskProcess.Wait).
	leaveOnExit func() bool
}

// Start creates the container and its task and starts it. The create and
// start calls are never cancelled, even by a stop: a cancelled call
// returns at once while containerd goes on creating the task, which then
// outlives our clean-up and keeps its container (and shim) alive. A stop
// (ctx) is checked between the steps instead; a create takes a second or
// so under emulation, well within a grace period.
func (r *taskRunner) Start(stop context.Context) (Process, error) {
	client, gen := r.containerd.Client()
	if client == nil {
		return nil, errors.New("containerd is not running")
	}
	ctx := namespaces.WithNamespace(context.Background(), r.namespace)
	if r.leases != nil {
		ctx = r.leases.with(ctx, client, r.namespace, r.log)
	}
	// Left from an earlier run of this service (or of containerd).
	if old, err := client.LoadContainer(ctx, r.id); err == nil {
		_ = deleteContainer(ctx, old)
	}
	cleanup := func(container containerd.Container) {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		if err := deleteContainer(dctx, container); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("service "+r.id+": delete container", "err", err)
		}
	}
	container, err := client.NewContainer(ctx, r.id, r.containerOpts()...)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if stop.Err() != nil {
		cleanup(container)
		return nil, errStopped
	}
	// The output comes to PID 1 through FIFOs and goes into a log file
	// that never blocks: with the shim writing the file itself (cio.LogFile)
	// a full /var stops the shim's copy, and the service blocks on its
	// next write once the pipe is full.
	creator := cio.NewCreator(cio.WithStreams(nil, r.out, r.out))
	task, err := container.NewTask(ctx, creator)
	for attempt := 1; err != nil && attempt < 4 && shimClosed(err) && stop.Err() == nil; attempt++ {
		// The group's shim was exiting, its last task just gone, as this
		// one was handed to it; the next try starts a new shim.
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
		task, err = container.NewTask(ctx, creator)
	}
	if err != nil {
		cleanup(container)
		return nil, fmt.Errorf("create task: %w", err)
	}
	if stop.Err() != nil {
		cleanup(container)
		return nil, errStopped
	}
	// The task's process exists, with its namespaces, and waits to run the
	// program: runtime.json's interfaces and namespace binds go in now.
	if r.p.NeedsBeforeRun() {
		if err := r.p.BeforeRun(int(task.Pid())); err != nil {
			cleanup(container)
			return nil, fmt.Errorf("runtime.json: %w", err)
		}
	}
	// A pidfd names this very process for as long as we hold it, so
	// signalling it needs no `runc kill` (a Go program start, a large
	// part of a second under emulation) and cannot hit a recycled pid.
	// Without one (an old kernel), signals go through containerd.
	pidfd, perr := unix.PidfdOpen(int(task.Pid()), 0)
	if perr != nil {
		pidfd = -1
	}
	// Wait before Start, so that no exit is missed.
	exitc, err := task.Wait(ctx)
	if err == nil {
		err = task.Start(ctx)
	}
	if err != nil {
		if pidfd >= 0 {
			_ = unix.Close(pidfd)
		}
		cleanup(container)
		return nil, fmt.Errorf("start task: %w", err)
	}
	return &taskProcess{r: r, ctx: ctx, task: task, io: task.IO(), exitc: exitc, gen: gen, pid: int(task.Pid()),
		pidfd: pidfd, ownPidNS: ownsPidNamespace(r.p.Spec)}, nil
}

// containerOpts are the new container's: its spec, and the runtime
// binary the shim is to run, when one is set. The runtime name is the
// client's default, so that the task still joins its group's shim.
func (r *taskRunner) containerOpts() []containerd.NewContainerOpts {
	opts := []containerd.NewContainerOpts{containerd.WithSpec(r.p.Spec)}
	if r.runtime != "" {
		opts = append(opts, containerd.WithRuntime(plugins.RuntimeRuncV2, &runcoptions.Options{BinaryName: r.runtime}))
	}
	return opts
}

// taskProcess is a running service task.
type taskProcess struct {
	r     *taskRunner
	ctx   context.Context
	io    cio.IO
	pid   int
	exitc <-chan containerd.ExitStatus
	gen   <-chan struct{}
	// pidfd is the task's process (-1: none); ownPidNS says it is the
	// init of a pid namespace of its own, so that SIGKILL to it ends
	// every process of the run.
	pidfd    int
	ownPidNS bool

	mu   sync.Mutex
	task containerd.Task // replaced when re-attached after a containerd restart

	once sync.Once
	code int
}

func (p *taskProcess) Pid() int { return p.pid }

// Signal sends sig straight to the task's process when that does what
// containerd's task.Kill would (signalsDirectly), else through containerd,
// or straight to the pid if containerd does not answer.
func (p *taskProcess) Signal(sig unix.Signal) error {
	p.mu.Lock()
	task, pidfd := p.task, p.pidfd
	if pidfd >= 0 && signalsDirectly(sig, p.ownPidNS) {
		// Under mu: Wait closes the pidfd under it.
		err := unix.PidfdSendSignal(pidfd, sig, nil, 0)
		p.mu.Unlock()
		if errors.Is(err, unix.ESRCH) {
			return nil // already gone: nothing left to signal
		}
		return err
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	var opts []containerd.KillOpts
	if sig == unix.SIGKILL {
		opts = append(opts, containerd.WithKillAll)
	}
	err := task.Kill(ctx, sig, opts...)
	if err != nil && !errdefs.IsNotFound(err) {
		return unix.Kill(p.pid, sig)
	}
	return nil
}

// Wait waits for the task to exit, across containerd restarts, then
// deletes it and its container with whichever client is current; but not
// when the machine is going down (Services.LeaveAtShutdown): each delete is a `runc delete` (a
// Go program start) and a call through the shim, and what it would clean
// up (runc's state, the shim, the cgroup) is in memory and goes with the
// machine. containerd and the shims are stopped next, and whatever is
// left mounted is unmounted by the shutdown.
func (p *taskProcess) Wait() int {
	p.once.Do(func() {
		p.code = p.wait()
		p.mu.Lock()
		if p.pidfd >= 0 {
			_ = unix.Close(p.pidfd)
			p.pidfd = -1
		}
		p.mu.Unlock()
		if p.r.leaveOnExit != nil && p.r.leaveOnExit() {
			p.r.log.Debug("service " + p.r.id + ": shutting down, container left to the shutdown")
		} else if c, _ := p.r.containerd.Client(); c != nil {
			if ct, err := c.LoadContainer(p.ctx, p.r.id); err == nil {
				_ = deleteContainer(p.ctx, ct)
			}
		}
		// The FIFOs' copies end when the shim closes its side; a task
		// re-attached after a containerd restart has no IO of its own,
		// so the first one's is closed here.
		if p.io != nil {
			done := make(chan struct{})
			goroutine.Go(p.r.log, "output "+p.r.id, false, func() { p.io.Wait(); close(done) })
			select {
			case <-done:
			case <-time.After(outputDrain):
				p.io.Cancel()
			}
			_ = p.io.Close()
		}
	})
	return p.code
}

// wait waits for the exit. If containerd dies meanwhile, it waits for the
// restarted containerd and attaches to the task again: the task lives on
// in its shim.
func (p *taskProcess) wait() int {
	exitc, gen := p.exitc, p.gen
	id, log := p.r.id, p.r.log
	for {
		st := <-exitc
		code, _, err := st.Result()
		if err == nil {
			return int(code)
		}
		log.Warn("service "+id+": lost containerd, re-attaching", "err", err)
	waitForNew:
		for {
			select {
			case <-gen:
				break waitForNew
			case <-time.After(time.Second):
				// Also notice the process gone while containerd is down.
				if unix.Kill(p.pid, 0) == unix.ESRCH {
					log.Warn("service " + id + " exited while containerd was down")
					return UnknownExit
				}
			}
		}
		var client *containerd.Client
		client, gen = p.r.containerd.Client()
		ct, err := client.LoadContainer(p.ctx, id)
		if err != nil {
			log.Warn("service "+id+": container gone after containerd restart", "err", err)
			return UnknownExit
		}
		t, err := ct.Task(p.ctx, nil)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				log.Warn("service "+id+": task gone after containerd restart", "err", err)
			}
			return UnknownExit
		}
		if exitc, err = t.Wait(p.ctx); err != nil {
			return UnknownExit
		}
		p.mu.Lock()
		p.task = t
		p.mu.Unlock()
		log.Info("service "+id+" re-attached", "pid", t.Pid())
	}
}

// signalsDirectly reports whether sig may go straight to a task's
// process rather than through containerd. task.Kill without KillAll (any
// signal but SIGKILL here) signals just that process, which a pidfd does
// too. SIGKILL must end every process of the run: the kernel does that
// for the init of a pid namespace (ownPidNS); otherwise only containerd's
// KillAll (runc kill --all) reaches them all.
func signalsDirectly(sig unix.Signal, ownPidNS bool) bool {
	return sig != unix.SIGKILL || ownPidNS
}

// ownsPidNamespace reports whether spec gives the container a pid
// namespace of its own (a new one, not one joined by path).
func ownsPidNamespace(spec *specs.Spec) bool {
	if spec == nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}

// deleteContainer kills and deletes the container's task, if it has one,
// then the container.
func deleteContainer(ctx context.Context, c containerd.Container) error {
	if t, err := c.Task(ctx, nil); err == nil {
		_, _ = t.Delete(ctx, containerd.WithProcessKill)
	}
	return c.Delete(ctx)
}

// shimClosed tells the error of a task handed to a shim that was exiting.
// containerd v2.4's task service passes the shim's ttrpc.ErrClosed up
// unconverted (core/runtime/v2 shimTask.Create), so it crosses gRPC with
// the code Unknown and only its text: there is no kind to test with
// errors.Is, and the text is checked within that code only.
func shimClosed(err error) bool {
	return errdefs.IsUnknown(err) && strings.Contains(err.Error(), ttrpc.ErrClosed.Error())
}
