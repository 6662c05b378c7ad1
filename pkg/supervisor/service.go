package supervisor

import (
	"context"
	"errors"
	"fmt"
	"github.com/keel-os/keel/pkg/goroutine"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/keel-os/keel/pkg/bootreport"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// errStoppedWhileStarting ends a start that a stop overtook.
var errStoppedWhileStarting = errors.New("stopped before it ran")

// DefaultNamespace is the containerd namespace of services, LinuxKit's.
const DefaultNamespace = "services.linuxkit"

// Service states, as the status command shows them.
const (
	StateStarting  = "starting"
	StateRunning   = "running"
	StateBackoff   = "backoff"   // exited, restarting after a delay
	StateCrashLoop = "crashloop" // backoff, and it keeps dying soon after each start
	StateExited    = "exited"    // exited and the policy says not to restart
	StateStopping  = "stopping"
	StateStopped   = "stopped" // stopped by keel (shutdown)
	StateFailed    = "failed"  // keel could not run it at all
)

// ShimGroupAnnotation is the spec annotation by which containerd's runc
// shim runs several containers in one shim process.
const ShimGroupAnnotation = "io.containerd.runc.v2.group"

// ClientSource hands out the current containerd client and a channel that
// is closed when it is replaced (containerd restarted). *Containerd is one.
type ClientSource interface {
	Client() (*containerd.Client, <-chan struct{})
}

// Services runs the service bundles under containerd, each in its own
// goroutine: created, started, restarted by its policy with backoff, and
// stopped in parallel at shutdown. A service's trouble never holds up the
// others.
type Services struct {
	Containerd ClientSource
	Mounts     *mount.Table // records runtime.json's mounts; may be nil in tests without them
	Log        *slog.Logger
	// LogDir receives <name>.log for each service.
	LogDir string
	// Namespace is the containerd namespace when runtime.json names none;
	// DefaultNamespace if empty.
	Namespace string
	// Backoff is the restart backoff template; DefaultBackoff() if zero.
	Backoff Backoff
	// CgroupRoot is where runtime.json's cgroups are made;
	// /sys/fs/cgroup if empty.
	CgroupRoot string
	// OverlayDir holds the writable layers of rootfs overlays
	// (runtime.json rootfsLower); DefaultOverlayDir if empty.
	OverlayDir string

	mu      sync.Mutex
	svcs    []*service
	stopped bool // StopServices was called: start nothing more
	wg      sync.WaitGroup
}

// service is one supervised service.
type service struct {
	b         bundle.Bundle
	namespace string
	logPath   string
	policy    Policy
	grace     time.Duration
	rt        *bundle.Runtime
	reset     time.Duration // up this long, a service is no longer crash-looping

	mu       sync.Mutex
	st       ServiceStatus
	task     containerd.Task
	stopping bool
	killing  bool          // the grace period is over: SIGKILL whatever starts
	stop     chan struct{} // closed when keel stops the service
	done     chan struct{} // closed when the service loop ends
	started  chan struct{} // closed after the first start attempt
	started1 sync.Once
}

// ServiceStatus is one service as the status command shows it.
type ServiceStatus struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	State     string    `json:"state"`
	Pid       uint32    `json:"pid,omitempty"`
	Restarts  int       `json:"restarts"`
	Policy    string    `json:"policy"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// LastExit is the exit code of the last run (128+N for signal N),
	// valid when LastExitAt is set.
	LastExit   int       `json:"lastExit"`
	LastExitAt time.Time `json:"lastExitAt,omitzero"`
	// NextStart is when a service in backoff starts again.
	NextStart time.Time `json:"nextStart,omitzero"`
	// CrashLooping is set while the service keeps dying soon after each
	// start, whatever its state (a start may take seconds), until it
	// stays up for the backoff's reset time.
	CrashLooping bool   `json:"crashLooping,omitempty"`
	Error        string `json:"error,omitempty"`
	Log          string `json:"log"`
}

func (s *Services) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Start launches every bundle concurrently and returns once each has been
// started once (or failed to), or ctx is done. The services keep being
// supervised afterwards.
func (s *Services) Start(ctx context.Context, bundles []bundle.Bundle) {
	var started []*service
	for _, b := range bundles {
		svc := s.add(b)
		started = append(started, svc)
		s.wg.Add(1)
		goroutine.Go(s.log(), "service "+b.Name, false, func() {
			defer s.wg.Done()
			defer close(svc.done)
			s.run(svc)
		})
	}
	for _, svc := range started {
		select {
		case <-svc.started:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Services) add(b bundle.Bundle) *service {
	ns := s.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	svc := &service{
		b:         b,
		namespace: ns,
		logPath:   filepath.Join(s.LogDir, b.Name+".log"),
		policy:    OnFailure,
		grace:     DefaultStopGrace,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		started:   make(chan struct{}),
	}
	svc.st = ServiceStatus{Name: b.Name, Namespace: ns, State: StateStarting, Policy: string(svc.policy), Log: svc.logPath}
	s.mu.Lock()
	if s.stopped {
		svc.stopping = true
		close(svc.stop)
	}
	s.svcs = append(s.svcs, svc)
	s.mu.Unlock()
	return svc
}

// Status returns every service's status, in start order.
func (s *Services) Status() []ServiceStatus {
	s.mu.Lock()
	svcs := append([]*service(nil), s.svcs...)
	s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(svcs))
	for _, svc := range svcs {
		svc.mu.Lock()
		st := svc.st
		if st.State == StateRunning && st.CrashLooping && time.Since(st.StartedAt) >= svc.reset {
			st.CrashLooping = false
		}
		svc.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// LogPaths are the services' log files.
func (s *Services) LogPaths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, svc := range s.svcs {
		out = append(out, svc.logPath)
	}
	return out
}

func (svc *service) update(fn func(st *ServiceStatus)) {
	svc.mu.Lock()
	fn(&svc.st)
	svc.mu.Unlock()
}

func (svc *service) markStarted() { svc.started1.Do(func() { close(svc.started) }) }

func (svc *service) isStopping() bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.stopping
}

// fail records that keel cannot run the service.
func (s *Services) fail(svc *service, err error) {
	s.log().Error("service "+svc.b.Name+" failed", "err", err)
	svc.update(func(st *ServiceStatus) {
		st.State = StateFailed
		st.Error = err.Error()
		st.Pid = 0
	})
	svc.markStarted()
}

// run is a service's whole life: prepare, then start, wait, and restart by
// its policy until it should not or keel stops it.
func (s *Services) run(svc *service) {
	spec, err := s.prepare(svc)
	if err != nil {
		s.fail(svc, err)
		return
	}
	bo := s.Backoff
	if bo.Initial == 0 {
		bo = DefaultBackoff()
	}
	svc.mu.Lock()
	svc.reset = bo.Reset
	svc.mu.Unlock()
	for {
		if svc.isStopping() {
			svc.update(func(st *ServiceStatus) { st.State = StateStopped })
			svc.markStarted()
			return
		}
		code, up, err := s.runOnce(svc, spec)
		svc.markStarted()
		if svc.isStopping() {
			svc.update(func(st *ServiceStatus) {
				st.State, st.Pid = StateStopped, 0
				if err == nil {
					st.LastExit, st.LastExitAt = code, time.Now()
				}
			})
			if err != nil {
				s.log().Info("service "+svc.b.Name+" stopped while starting", "err", err)
			} else {
				s.log().Info("service "+svc.b.Name+" stopped", "exit", code)
			}
			return
		}
		if err != nil {
			// keel could not start it (containerd down, runc failure):
			// retried like a crash, with the same backoff.
			s.log().Warn("service "+svc.b.Name+" start failed", "err", err)
			code = -1
		} else {
			s.log().Info("service "+svc.b.Name+" exited", "exit", code, "uptime", up.Round(time.Millisecond))
		}
		if err == nil && !svc.policy.ShouldRestart(code) {
			svc.update(func(st *ServiceStatus) {
				st.State, st.Pid = StateExited, 0
				st.LastExit, st.LastExitAt = code, time.Now()
			})
			return
		}
		delay := bo.Next(up)
		state := StateBackoff
		if bo.CrashLooping() {
			state = StateCrashLoop
		}
		svc.update(func(st *ServiceStatus) {
			st.State, st.Pid = state, 0
			st.CrashLooping = state == StateCrashLoop
			if err == nil {
				st.LastExit, st.LastExitAt = code, time.Now()
			} else {
				st.Error = err.Error()
			}
			st.NextStart = time.Now().Add(delay)
		})
		if state == StateCrashLoop {
			s.log().Warn("service "+svc.b.Name+" crash-looping", "restarts", svc.restarts(), "delay", delay.Round(time.Millisecond))
		}
		select {
		case <-svc.stop:
			svc.update(func(st *ServiceStatus) { st.State, st.NextStart = StateStopped, time.Time{} })
			return
		case <-time.After(delay):
		}
		svc.update(func(st *ServiceStatus) {
			st.Restarts++
			st.State, st.NextStart = StateStarting, time.Time{}
		})
	}
}

func (svc *service) restarts() int {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.st.Restarts
}

// prepare reads the bundle and makes runtime.json's directories and mounts.
func (s *Services) prepare(svc *service) (*specs.Spec, error) {
	b := svc.b
	spec, err := bundle.ReadConfig(b.ConfigPath())
	if err != nil {
		return nil, err
	}
	if spec.Root == nil || spec.Process == nil {
		return nil, fmt.Errorf("%s: spec needs a root and a process", b.ConfigPath())
	}
	rt, err := bundle.ReadRuntime(b.RuntimePath())
	if err != nil {
		return nil, err
	}
	policy, perr := ParsePolicy(rt.Restart)
	grace, gerr := ParseGrace(rt.StopGracePeriod)
	for _, e := range []error{perr, gerr} {
		if e != nil {
			s.log().Warn("service "+b.Name+": runtime.json", "err", e)
		}
	}
	// A stop may come from another goroutine at any time: under the lock.
	svc.mu.Lock()
	svc.rt, svc.policy, svc.grace = rt, policy, grace
	if rt.Namespace != "" {
		svc.namespace = rt.Namespace
	}
	svc.st.Policy, svc.st.Namespace = string(svc.policy), svc.namespace
	svc.mu.Unlock()

	// containerd's runc resolves a relative root against its own bundle
	// directory, not ours.
	root := *spec.Root
	root.Path = inBundle(b, root.Path)
	spec.Root = &root
	// All services of a namespace share one shim: one process instead of
	// one per service (each costs megabytes, and seconds to start under
	// emulation). A service may still name a group of its own.
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	if _, ok := spec.Annotations[ShimGroupAnnotation]; !ok {
		spec.Annotations[ShimGroupAnnotation] = "keel-" + svc.namespace
	}
	if err := mountSharedRoot(s.Mounts, s.OverlayDir, b, rt, root.Path); err != nil {
		return nil, err
	}
	if err := makeRuntimeDirs(b, rt); err != nil {
		return nil, err
	}
	if err := mountRuntime(b, rt, s.Mounts); err != nil {
		return nil, err
	}
	if err := createRuntimeCgroups(s.CgroupRoot, rt); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(svc.logPath), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	return spec, nil
}

// runOnce creates the container and its task, starts it and waits for it
// to exit, across containerd restarts. It returns the exit code and how
// long the task ran, or an error if it could not be started.
func (s *Services) runOnce(svc *service, spec *specs.Spec) (int, time.Duration, error) {
	client, gen := s.Containerd.Client()
	if client == nil {
		return 0, 0, errors.New("containerd is not running")
	}
	ctx := namespaces.WithNamespace(context.Background(), svc.namespace)
	id := svc.b.Name
	// Left from an earlier run of this service (or of containerd).
	if old, err := client.LoadContainer(ctx, id); err == nil {
		_ = deleteContainer(ctx, old)
	}
	// The create and start calls are never cancelled, even by a stop: a
	// cancelled call returns at once while containerd goes on creating the
	// task, which then outlives our clean-up and keeps its container (and
	// shim) alive. A stop is instead checked between the steps; a create
	// takes a second or so under emulation, well within a grace period.
	cleanup := func(container containerd.Container) {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		if err := deleteContainer(dctx, container); err != nil && !errdefs.IsNotFound(err) {
			s.log().Warn("service "+id+": delete container", "err", err)
		}
	}
	container, err := client.NewContainer(ctx, id, containerd.WithSpec(spec))
	if err != nil {
		return 0, 0, fmt.Errorf("create container: %w", err)
	}
	if svc.isStopping() {
		cleanup(container)
		return 0, 0, errStoppedWhileStarting
	}
	// The shim appends the task's stdout and stderr to the file itself: the
	// service never waits for keel to read its output.
	task, err := container.NewTask(ctx, cio.LogFile(svc.logPath))
	for attempt := 1; err != nil && attempt < 4 && shimClosed(err) && !svc.isStopping(); attempt++ {
		// The group's shim was exiting, its last task just gone, as
		// this one was handed to it; the next try starts a new shim.
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
		task, err = container.NewTask(ctx, cio.LogFile(svc.logPath))
	}
	if err != nil {
		cleanup(container)
		return 0, 0, fmt.Errorf("create task: %w", err)
	}
	if svc.isStopping() {
		cleanup(container)
		return 0, 0, errStoppedWhileStarting
	}
	// The task's process exists, with its namespaces, and waits to run the
	// program: runtime.json's interfaces and namespace binds go in now.
	if rt := svc.rt; rt != nil && (len(rt.Interfaces) > 0 || rt.BindNS != (bundle.Namespaces{})) {
		if err := PrepareNamespaces(rt, int(task.Pid()), s.Mounts); err != nil {
			cleanup(container)
			return 0, 0, fmt.Errorf("runtime.json: %w", err)
		}
	}
	// Wait before Start, so that no exit is missed.
	exitc, err := task.Wait(ctx)
	if err == nil {
		err = task.Start(ctx)
	}
	if err != nil {
		cleanup(container)
		return 0, 0, fmt.Errorf("start task: %w", err)
	}
	pid := task.Pid()
	running := time.Now()
	svc.mu.Lock()
	svc.task = task
	svc.st.State, svc.st.Pid, svc.st.StartedAt, svc.st.Error = StateRunning, pid, running, ""
	stopping, killing := svc.stopping, svc.killing
	svc.mu.Unlock()
	svc.markStarted()
	s.log().Info("service "+id+" running", "pid", pid)
	bootreport.Mark("service " + id) // the first time only
	// Stop came while it was starting (a start can take seconds under
	// emulation): give it what the others got.
	switch {
	case killing:
		_ = task.Kill(ctx, unix.SIGKILL, containerd.WithKillAll)
	case stopping:
		_ = task.Kill(ctx, unix.SIGTERM)
	}

	code := s.waitTask(svc, ctx, task, exitc, gen)
	up := time.Since(running)
	svc.mu.Lock()
	svc.task = nil
	svc.mu.Unlock()
	// Delete with whichever client is current now.
	if c, _ := s.Containerd.Client(); c != nil {
		if ct, err := c.LoadContainer(ctx, id); err == nil {
			_ = deleteContainer(ctx, ct)
		}
	}
	return code, up, nil
}

// deleteContainer kills and deletes the container's task, if it has one,
// then the container.
func deleteContainer(ctx context.Context, c containerd.Container) error {
	if t, err := c.Task(ctx, nil); err == nil {
		_, _ = t.Delete(ctx, containerd.WithProcessKill)
	}
	return c.Delete(ctx)
}

// waitTask waits for the task to exit. If containerd dies meanwhile, it
// waits for the restarted containerd and attaches to the task again: the
// task lives on in its shim.
func (s *Services) waitTask(svc *service, ctx context.Context, task containerd.Task, exitc <-chan containerd.ExitStatus, gen <-chan struct{}) int {
	pid := task.Pid()
	for {
		st := <-exitc
		code, _, err := st.Result()
		if err == nil {
			return int(code)
		}
		s.log().Warn("service "+svc.b.Name+": lost containerd, re-attaching", "err", err)
		for {
			select {
			case <-gen:
			case <-time.After(time.Second):
				// containerd may come back without a new client if Wait
				// failed for another reason; also notice the process gone.
				if unix.Kill(int(pid), 0) == unix.ESRCH {
					// Exited while nobody watched: its status went
					// with the shim's; report it as unknown.
					s.log().Warn("service " + svc.b.Name + " exited while containerd was down")
					return containerd.UnknownExitStatus
				}
				continue
			}
			break
		}
		var client *containerd.Client
		client, gen = s.Containerd.Client()
		ct, err := client.LoadContainer(ctx, svc.b.Name)
		if err != nil {
			s.log().Warn("service "+svc.b.Name+": container gone after containerd restart", "err", err)
			return containerd.UnknownExitStatus
		}
		t, err := ct.Task(ctx, nil)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				s.log().Warn("service "+svc.b.Name+": task gone after containerd restart", "err", err)
			}
			return containerd.UnknownExitStatus
		}
		exitc, err = t.Wait(ctx)
		if err != nil {
			return containerd.UnknownExitStatus
		}
		svc.mu.Lock()
		svc.task = t
		svc.mu.Unlock()
		s.log().Info("service "+svc.b.Name+" re-attached", "pid", t.Pid())
	}
}

// shimClosed tells the error of a task handed to a shim that was exiting.
// It crosses containerd's gRPC as text only.
func shimClosed(err error) bool {
	return strings.Contains(err.Error(), "ttrpc: closed")
}

// StopServices stops every service in parallel: SIGTERM, then SIGKILL
// after the service's grace period (runtime.json stopGracePeriod), or
// sooner if ctx is done. It returns when all have stopped.
func (s *Services) StopServices(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	svcs := append([]*service(nil), s.svcs...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(svcs))
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.stopOne(ctx, svc)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Services) stopOne(ctx context.Context, svc *service) error {
	svc.mu.Lock()
	if !svc.stopping {
		svc.stopping = true
		close(svc.stop)
		if svc.st.State == StateRunning {
			svc.st.State = StateStopping
		}
	}
	grace := svc.grace
	svc.mu.Unlock()
	s.signal(svc, unix.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-svc.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	svc.mu.Lock()
	svc.killing = true
	svc.mu.Unlock()
	s.log().Warn("service "+svc.b.Name+" did not stop in time, killing", "grace", grace)
	s.signal(svc, unix.SIGKILL)
	// A task still being created is killed as soon as it exists.
	select {
	case <-svc.done:
		return nil
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	return fmt.Errorf("service %s: still running after SIGKILL", svc.b.Name)
}

// signal sends sig to the service's task through containerd, or straight
// to its pid if containerd does not answer.
func (s *Services) signal(svc *service, sig syscall.Signal) {
	svc.mu.Lock()
	task, pid, ns := svc.task, svc.st.Pid, svc.namespace
	svc.mu.Unlock()
	if task == nil {
		return
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 2*time.Second)
	defer cancel()
	var opts []containerd.KillOpts
	if sig == unix.SIGKILL {
		opts = append(opts, containerd.WithKillAll)
	}
	if err := task.Kill(ctx, sig, opts...); err != nil && !errdefs.IsNotFound(err) && pid > 0 {
		_ = unix.Kill(int(pid), sig)
	}
}
