package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/goroutine"
	"github.com/keel-os/keel/pkg/logfile"
)

// DefaultNamespace is the containerd namespace of services, LinuxKit's.
const DefaultNamespace = "services.linuxkit"

// ShimGroupAnnotation is the spec annotation by which containerd's runc
// shim runs several containers in one shim process.
const ShimGroupAnnotation = "io.containerd.runc.v2.group"

// Services runs the service bundles under containerd, each supervised by
// a Unit of its own: prepared once, then started, restarted by its policy
// with backoff, and stopped in parallel at shutdown. A service's trouble
// never holds up the others.
type Services struct {
	Containerd ClientSource
	Preparer   *Preparer
	Log        *slog.Logger
	// LogDir receives <name>.log for each service.
	LogDir string
	// Namespace is the containerd namespace when runtime.json names none;
	// DefaultNamespace if empty.
	Namespace string
	// Backoff is the restart backoff template; DefaultBackoff() if zero.
	Backoff Backoff
	// LogMax is the size at which a service's log is rotated;
	// logfile.DefaultMax if 0.
	LogMax int64
	// Running, when set, is called the first time each service runs (the
	// boot report).
	Running func(name string)
	// Healthy, when set, is called the first time each service is
	// healthy (the boot report).
	Healthy func(name string)
	// LeaveAtShutdown makes StopServices leave the ended tasks and their
	// containers in containerd instead of deleting them one by one. PID 1
	// sets it: its StopServices is the machine going down, with containerd
	// and the shims stopped right after and their state in memory.
	LeaveAtShutdown bool
	// Runtime is the OCI runtime program the runc shim runs for each
	// task's create, start, exec and delete (the shim's BinaryName): a path,
	// or a name on containerd's PATH. "" is the shim's own default, runc.
	// PID 1 sets crun when the image has it: a C program starts in a
	// fraction of runc's time under emulation, and a create is two of
	// runc's Go starts (runc create, then runc init).
	Runtime string

	// runnerFor and probeFor make a service's runner and health probes;
	// tests replace them (taskRunner and probeFor if nil).
	runnerFor func(name string, p *Prepared, out io.Writer) Runner
	probeFor  func(*HealthCheck, Process) (Probe, error)

	// leases has a lock of its own; one for all the services.
	leases serviceLeases

	mu      sync.Mutex
	svcs    []*service
	stopped bool          // StopServices was called: start nothing more
	changed chan struct{} // closed and replaced when a service starts or its health changes
}

// service is one supervised service.
type service struct {
	name      string
	mu        sync.Mutex
	namespace string              // guarded by mu: runtime.json may change it
	deps      []bundle.Dependency // guarded by mu: read from runtime.json
	hasRun    bool                // guarded by mu: it has started once
	prepared  chan struct{}       // closed once deps is known (or the bundle failed)
	log       *logfile.File       // nil when it could not be opened
	logPath   string
	unit      *Unit // guarded by mu: replaced by StartService
	ready     bool  // guarded by mu: prepared, and its unit has run
	once      sync.Once
}

// ServiceStatus is one service as the status command shows it.
type ServiceStatus struct {
	UnitStatus
	Namespace string `json:"namespace"`
	Log       string `json:"log"`
	// DependsOn are the service's dependency edges.
	DependsOn []bundle.Dependency `json:"dependsOn,omitempty"`
}

func (s *Services) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Start launches every bundle concurrently and returns once each service
// that depends on none has been started once (or failed to), or ctx is
// done. A service that depends on others starts when they meet their
// conditions, which may be later or never. The services keep being
// supervised afterwards, until StopServices.
func (s *Services) Start(ctx context.Context, bundles []bundle.Bundle) {
	var started []*service
	for _, b := range bundles {
		svc := s.add(b)
		started = append(started, svc)
		goroutine.Go(s.logger(), "service "+b.Name, false, func() { s.run(svc, b) })
	}
	for _, svc := range started {
		select {
		case <-svc.prepared:
		case <-ctx.Done():
			return
		}
		if len(svc.dependencies()) > 0 {
			continue
		}
		select {
		case <-svc.current().Started():
		case <-ctx.Done():
			return
		}
	}
}

// current is the service's unit: a start after a stop makes a new one.
func (svc *service) current() *Unit {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.unit
}

func (svc *service) dependencies() []bundle.Dependency {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.deps
}

// notify wakes whoever waits for a change of some service's state.
func (s *Services) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

func (s *Services) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *Services) byName(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.svcs {
		if svc.name == name {
			return svc
		}
	}
	return nil
}

// waitForDependencies returns once every dependency of svc meets its
// condition, or svc is stopped. Meanwhile its status says what it waits
// for.
func (s *Services) waitForDependencies(svc *service) {
	said := ""
	for {
		changed := s.changes()
		reason := s.unmet(svc.dependencies())
		if reason == "" {
			if said != "" {
				s.logger().Info("service "+svc.name+" dependencies met", "waited_for", said)
			}
			return
		}
		svc.current().setWaiting(reason)
		if reason != said {
			s.logger().Info("service "+svc.name+" waiting", "for", reason)
			said = reason
		}
		select {
		case <-changed:
		case <-svc.current().stop:
			return // Run sees the stop and ends at once
		}
	}
}

// unmet says which dependencies do not meet their condition now, e.g.
// "db (healthy; it is starting)", or "" when all do.
func (s *Services) unmet(deps []bundle.Dependency) string {
	var out []string
	for _, d := range deps {
		dep := s.byName(d.Service)
		if dep == nil {
			out = append(out, d.Service+" (not in this image)")
			continue
		}
		st := dep.current().Status()
		switch d.Condition {
		case bundle.ConditionHealthy:
			if st.Health != nil && st.Health.State == HealthHealthy {
				continue
			}
			now := st.State
			if st.Health != nil && st.State == StateRunning {
				now = st.Health.State
			}
			out = append(out, d.Service+" (healthy; it is "+now+")")
		default:
			dep.mu.Lock()
			ran := dep.hasRun
			dep.mu.Unlock()
			if ran {
				continue
			}
			out = append(out, d.Service+" (started; it is "+st.State+")")
		}
	}
	return strings.Join(out, ", ")
}

func (s *Services) add(b bundle.Bundle) *service {
	ns := s.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	svc := &service{name: b.Name, namespace: ns, logPath: filepath.Join(s.LogDir, b.Name+".log"), prepared: make(chan struct{})}
	svc.unit = &Unit{Name: "service " + b.Name, Policy: OnFailure, Backoff: s.Backoff, Log: s.logger()}
	svc.unit.init()
	s.mu.Lock()
	stopped := s.stopped
	s.svcs = append(s.svcs, svc)
	s.mu.Unlock()
	if stopped {
		svc.unit.cancel() // Run then ends at once
	}
	return svc
}

// run prepares the service's bundle, then runs its unit.
func (s *Services) run(svc *service, b bundle.Bundle) {
	preparer := s.Preparer
	if preparer == nil {
		preparer = &Preparer{} // fails cleanly: it has no mount table
	}
	p, err := preparer.Prepare(b)
	if err == nil {
		err = os.MkdirAll(s.LogDir, 0o755)
	}
	var health *HealthCheck
	if err == nil {
		health, err = parseHealthcheck(p.Runtime.Healthcheck)
	}
	if err != nil {
		close(svc.prepared)
		svc.unit.Fail(err)
		s.notify()
		return
	}
	for _, w := range p.Warnings {
		s.logger().Warn("service "+b.Name, "err", w)
	}
	svc.mu.Lock()
	if p.Runtime.Namespace != "" {
		svc.namespace = p.Runtime.Namespace
	}
	ns := svc.namespace
	svc.deps = p.Runtime.DependsOn
	svc.mu.Unlock()
	close(svc.prepared)
	// All services of a namespace share one shim: one process instead of
	// one per service (each costs megabytes, and seconds to start under
	// emulation). A service may still name a group of its own.
	ann := map[string]string{}
	for k, v := range p.Spec.Annotations {
		ann[k] = v
	}
	if _, ok := ann[ShimGroupAnnotation]; !ok {
		ann[ShimGroupAnnotation] = "keel-" + ns
	}
	p.Spec.Annotations = ann
	lf, err := logfile.Open(svc.logPath, s.LogMax)
	if err != nil {
		s.logger().Warn("service "+b.Name+": no log file, output dropped", "err", err)
	}
	svc.log = lf
	u := svc.unit
	u.mu.Lock()
	u.Policy, u.Grace = p.Policy, p.Grace
	u.st.Policy = string(p.Policy)
	u.mu.Unlock()
	if s.runnerFor != nil {
		u.Runner = s.runnerFor(b.Name, p, svc.output())
	} else {
		u.Runner = &taskRunner{containerd: s.Containerd, id: b.Name, namespace: ns, leases: &s.leases, p: p, out: svc.output(),
			log: s.logger(), runtime: s.Runtime, leaveOnExit: s.leavingAtShutdown}
	}
	u.OnStart = func(Process) {
		svc.once.Do(func() {
			svc.mu.Lock()
			svc.hasRun = true
			svc.mu.Unlock()
			if s.Running != nil {
				s.Running(b.Name)
			}
			s.notify()
		})
	}
	var healthyOnce sync.Once
	u.Health, u.ProbeFor = health, probeFor
	if s.probeFor != nil {
		u.ProbeFor = s.probeFor
	}
	u.OnHealth = func(st HealthStatus) {
		if st.State == HealthHealthy && s.Healthy != nil {
			healthyOnce.Do(func() { s.Healthy(b.Name) })
		}
		s.notify()
	}
	s.waitForDependencies(svc)
	svc.mu.Lock()
	svc.ready = true
	svc.mu.Unlock()
	u.Run(context.Background())
	if lf != nil {
		lf.Close()
	}
}

// output is where the service's stdout and stderr go: its log file,
// which never blocks and never fails, or nowhere.
func (svc *service) output() io.Writer {
	if svc.log == nil {
		return io.Discard
	}
	return svc.log
}

// Status returns every service's status, in start order.
func (s *Services) Status() []ServiceStatus {
	s.mu.Lock()
	svcs := append([]*service(nil), s.svcs...)
	s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(svcs))
	for _, svc := range svcs {
		st := svc.current().Status()
		st.Name = svc.name
		svc.mu.Lock()
		ns, deps := svc.namespace, svc.deps
		svc.mu.Unlock()
		out = append(out, ServiceStatus{UnitStatus: st, Namespace: ns, Log: svc.logPath, DependsOn: deps})
	}
	return out
}

// StopServices stops every service: SIGTERM, then SIGKILL after the
// service's grace period (runtime.json stopGracePeriod), or sooner if ctx
// is done. A service is stopped once every service that depends on it has
// stopped; the others stop in parallel. It returns when all have stopped.
func (s *Services) StopServices(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	svcs := append([]*service(nil), s.svcs...)
	s.mu.Unlock()
	dependents := map[string][]*service{}
	for _, svc := range svcs {
		for _, d := range svc.dependencies() {
			dependents[d.Service] = append(dependents[d.Service], svc)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(svcs))
	for i, svc := range svcs {
		wg.Add(1)
		goroutine.Go(s.logger(), "stop "+svc.name, false, func() {
			defer wg.Done()
			for _, d := range dependents[svc.name] {
				if d == svc {
					continue
				}
				select {
				case <-d.current().Done():
				case <-ctx.Done():
				}
			}
			errs[i] = svc.current().Stop(ctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// leavingAtShutdown reports whether a run that ends now leaves its task
// and container: StopServices was called, with LeaveAtShutdown.
func (s *Services) leavingAtShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.LeaveAtShutdown && s.stopped
}

// wait waits until every service's unit has ended.
func (s *Services) wait() {
	s.mu.Lock()
	svcs := append([]*service(nil), s.svcs...)
	s.mu.Unlock()
	for _, svc := range svcs {
		<-svc.current().Done()
	}
}

// StopService stops one service (SIGTERM, SIGKILL after its grace period)
// and leaves it stopped: its restart policy does not bring it back, only
// StartService does.
func (s *Services) StopService(ctx context.Context, name string) error {
	svc := s.byName(name)
	if svc == nil {
		return fmt.Errorf("%q: %w", name, ErrNoService)
	}
	s.logger().Info("service " + name + " stop asked for")
	return svc.current().Stop(ctx)
}

// StartService starts a service that is not running (stopped, exited or
// given up on); one running, starting or in backoff is left as it is.
// Its dependencies are not waited for: a person asked.
func (s *Services) StartService(name string) error {
	svc := s.byName(name)
	if svc == nil {
		return fmt.Errorf("%q: %w", name, ErrNoService)
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return errors.New("shutting down")
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	old := svc.unit
	select {
	case <-old.Done():
	default:
		if !svc.ready {
			return fmt.Errorf("%s has not started yet (%s)", name, old.Status().WaitingFor)
		}
		return nil // running, starting or restarting by itself
	}
	if old.Runner == nil {
		return fmt.Errorf("%s cannot run: %s", name, old.Status().Error)
	}
	u := &Unit{Name: old.Name, Runner: old.Runner, Policy: old.Policy, Grace: old.Grace, Backoff: s.Backoff,
		Log: old.Log, OnStart: old.OnStart, Health: old.Health, ProbeFor: old.ProbeFor, OnHealth: old.OnHealth}
	u.init()
	svc.unit = u
	s.logger().Info("service " + name + " start asked for")
	goroutine.Go(s.logger(), "service "+name, false, func() { u.Run(context.Background()) })
	return nil
}
