package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bootreport"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/goroutine"
	"github.com/keel-os/keel/pkg/mount"
)

// System is what PID 1 runs once the machine is set up, as phases: the
// onboot bundles, containerd, the services and the console shell (Boot),
// and the shutdown (Shutdown). Each phase marks the boot report when it
// is reached, here and nowhere else.
type System struct {
	Log     *slog.Logger
	Console *bootlog.Console
	Reaper  *Reaper
	Mounts  *mount.Table
	// Root is where /containers is; "/" if empty.
	Root string
	// LogDir receives the containers' logs; /var/log if empty.
	LogDir string
	// StateDir is libcontainer's state directory.
	StateDir string
	// Shell is the console shell, started after onboot; may be nil.
	Shell interface {
		Start()
		Stop()
	}
	// CPUs is how many CPUs the machine has (runtime.NumCPU if 0):
	// containerd starts alongside onboot only when there are two or more.
	CPUs int
	// Oneshot asks for a power-off once the services run.
	Oneshot bool
	// Request asks PID 1 for a shutdown (an onboot failure that halts,
	// oneshot).
	Request func(Action)
	// StatusSocket is where the status command is answered;
	// DefaultStatusSocket if empty.
	StatusSocket string
	// Runtime is the services' OCI runtime binary (Services.Runtime); ""
	// is the runc shim's default, runc.
	Runtime string
	// Containerd is the daemon; set up by NewSystem, replaceable in tests.
	Containerd *Containerd

	preparer *Preparer
	onboot   *Onboot
	services *Services

	mu       sync.Mutex
	cancel   context.CancelFunc // ends Boot's phases
	booted   chan struct{}      // closed when Boot returns
	shutdown bool
}

// bootStopWait bounds how long a shutdown waits for Boot to wind down (an
// onboot container gets DefaultOnbootGrace to exit on SIGTERM).
const bootStopWait = DefaultOnbootGrace + 3*time.Second

// NewSystem fills in what the phases share.
func NewSystem(s *System) *System {
	if s.Root == "" {
		s.Root = "/"
	}
	if s.LogDir == "" {
		s.LogDir = "/var/log"
	}
	if s.StatusSocket == "" {
		s.StatusSocket = DefaultStatusSocket
	}
	if s.Request == nil {
		s.Request = func(Action) {}
	}
	if s.CPUs == 0 {
		s.CPUs = runtime.NumCPU()
	}
	s.preparer = &Preparer{Mounts: s.Mounts}
	s.onboot = &Onboot{
		Engine:   &Libcontainer{Reaper: s.Reaper, StateDir: s.StateDir, Log: s.Log},
		Preparer: s.preparer,
		Console:  s.Console,
		Log:      s.Log,
		LogDir:   s.LogDir,
		Done:     func(r Result) { bootreport.Mark(kindName(r.Bundle) + " " + r.Bundle.Name) },
	}
	if s.Containerd == nil {
		s.Containerd = &Containerd{Reaper: s.Reaper, Log: s.Log,
			Cgroup: filepath.Join("/sys/fs/cgroup", DefaultContainerdCgroup)}
	}
	s.services = &Services{Containerd: s.Containerd, Preparer: s.preparer, Log: s.Log, LogDir: s.LogDir,
		LeaveAtShutdown: true, Runtime: s.Runtime,
		Running: func(name string) { bootreport.Mark("service " + name) },
		Healthy: func(name string) { bootreport.Mark("service " + name + " healthy") }}
	return s
}

// Boot runs the phases: the onboot bundles in order, then the console
// shell, then the services. On a machine with two CPUs or more,
// containerd (when the image has services) starts at once and comes up
// while onboot runs, as LinuxKit's rc scripts start it: onboot containers
// are serial, so a second CPU is otherwise idle. Until onboot is done it
// yields the CPU (Containerd.Idle). It waits for onboot with one CPU, and
// when an onboot container reaches a path containerd uses
// (onbootPreparesContainerd). The services start once onboot is done. A
// shutdown (Shutdown) ends Boot wherever it is: what was not started yet
// is never started.
func (s *System) Boot() {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.booted = make(chan struct{})
	defer close(s.booted)
	s.mu.Unlock()

	if err := serveControl(ctx, s.Log, s.StatusSocket, s.handle); err != nil {
		s.Log.Warn("control", "err", err)
	}
	services, err := bundle.List(s.Root, bundle.Service)
	if err != nil {
		s.Log.Error("services", "err", err)
	}
	bundles, err := bundle.List(s.Root, bundle.Onboot)
	if err != nil {
		s.Log.Error("onboot", "err", err)
	}
	var containerd <-chan error
	if len(services) > 0 && len(bundles) > 0 {
		if name, why := onbootPreparesContainerd(bundles, s.Containerd.paths()); name != "" {
			s.Log.Info("containerd waits for onboot", "bundle", name, "reason", why)
		} else if s.CPUs < 2 {
			// Measured (make bench-boot, -smp 1): started alongside, even
			// at cpu.idle, it slowed onboot (done 3.5 -> 5.6 s after /init)
			// and the services came up no sooner.
			s.Log.Info("containerd waits for onboot", "reason", "one CPU")
		} else {
			// It yields the CPU to onboot, which is what boot waits for.
			s.Containerd.Idle(true)
			containerd = s.startContainerd(ctx)
		}
	}
	results := s.onboot.RunAll(ctx, bundles)
	s.Containerd.Idle(false)
	if ctx.Err() != nil {
		return
	}
	bootreport.Mark("onboot done")
	if _, fatal := Fatal(results); fatal {
		// The shutdown this asks for stops containerd too.
		s.Request(Halt)
		return
	}
	if len(services) > 0 && containerd == nil {
		containerd = s.startContainerd(ctx)
	}
	// The shell comes before the services: a person can look around while
	// containerd starts, or while it fails to.
	if s.Shell != nil && !s.Oneshot {
		s.Shell.Start()
	}
	s.startServices(ctx, services, containerd)
	if ctx.Err() == nil && s.Oneshot {
		s.Log.Info("oneshot: services started, powering off")
		s.Request(PowerOff)
	}
}

// startContainerd starts containerd in the background; the channel gets
// the result of its first start (nil once its API answers).
func (s *System) startContainerd(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	goroutine.Go(s.Log, "containerd start", false, func() {
		err := s.Containerd.Start(ctx)
		if err == nil {
			bootreport.Mark("containerd")
		}
		done <- err
	})
	return done
}

// startServices waits for containerd's first start, then starts every
// service. It returns once each service has been started once.
func (s *System) startServices(ctx context.Context, bundles []bundle.Bundle, containerd <-chan error) {
	if len(bundles) == 0 {
		s.Log.Info("no services, containerd not started")
		return
	}
	var err error
	select {
	case err = <-containerd:
	case <-ctx.Done():
		return
	}
	if err != nil {
		s.Log.Warn("services not started", "err", err)
		return
	}
	start := time.Now()
	s.services.Start(ctx, bundles)
	running := 0
	for _, st := range s.services.Status() {
		if st.State == StateRunning {
			running++
		}
	}
	bootreport.Mark("services")
	s.Log.Info("services started", "count", len(bundles), "running", running, "duration", time.Since(start).Round(time.Millisecond))
}

// handle answers a request of the keel command.
func (s *System) handle(req Request) Response {
	var err error
	switch req.Op {
	case "status":
		st := s.Status()
		return Response{Status: &st}
	case "start":
		err = s.services.StartService(req.Name)
	case "stop":
		err = s.services.StopService(context.Background(), req.Name)
	case "restart":
		if err = s.services.StopService(context.Background(), req.Name); err == nil {
			err = s.services.StartService(req.Name)
		}
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	if err != nil {
		return Response{Error: err.Error()}
	}
	st := s.Status()
	return Response{Status: &st}
}

// Status is what the status command shows.
func (s *System) Status() Status {
	cd := s.Containerd.Status()
	return Status{
		Now:        time.Now(),
		Containerd: ContainerdStatus{Pid: cd.Pid, Restarts: cd.Restarts},
		Services:   s.services.Status(),
		Orphans:    s.Reaper.Orphans(),
		Panics:     goroutine.Panics(),
	}
}

// Shutdown ends Boot's phases, then stops everything and ends the machine
// with action a (see Shutdown.Run). It returns only if reboot(2) failed.
// A second call runs the sequence again: each step is safe to repeat.
func (s *System) Shutdown(a Action) error {
	s.mu.Lock()
	s.shutdown = true
	if s.cancel != nil {
		s.cancel()
	}
	booted := s.booted
	s.mu.Unlock()
	// An interrupted onboot container is stopped, and Boot has said so,
	// before the onshutdown containers run.
	if booted != nil {
		select {
		case <-booted:
		case <-time.After(bootStopWait):
			s.Log.Warn("shutdown: boot still winding down, going on")
		}
	}
	sd := &Shutdown{Reaper: s.Reaper, Mounts: s.Mounts, Log: s.Log,
		Services: s.services, Containerd: s.Containerd, Flush: s.flushConsole}
	if s.Shell != nil {
		sd.StopConsole = s.Shell.Stop
	}
	onshutdown := &Onshutdown{Runner: s.onboot, Root: s.Root, Log: s.Log}
	sd.Onshutdown = onshutdown.Run
	return sd.Run(a)
}

func (s *System) flushConsole() {
	if s.Console != nil {
		s.Console.Flush(time.Second) // bounded: a stopped console loses them
	}
}
