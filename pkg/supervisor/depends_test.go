package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// events records what happened, in order, across services.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) index(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, l := range e.log {
		if l == s {
			return i
		}
	}
	return -1
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.log, ", ")
}

// recordingRunner starts processes that run until signalled, recording
// starts and stops.
type recordingRunner struct {
	name string
	ev   *events
}

func (r *recordingRunner) Start(context.Context) (Process, error) {
	r.ev.add("start " + r.name)
	return &recordingProc{name: r.name, ev: r.ev, end: make(chan int, 1)}, nil
}

type recordingProc struct {
	name string
	ev   *events
	end  chan int
	once sync.Once
}

func (p *recordingProc) Pid() int { return 1 }
func (p *recordingProc) Signal(sig unix.Signal) error {
	p.once.Do(func() {
		p.ev.add("stop " + p.name)
		go func() {
			// Slow to go, so that a stop not waiting for it shows.
			time.Sleep(20 * time.Millisecond)
			p.ev.add("exited " + p.name)
			p.end <- 143
		}()
	})
	return nil
}
func (p *recordingProc) Wait() int { return <-p.end }

// writeServiceBundle writes a bundle PID 1 can prepare without root.
func writeServiceBundle(t *testing.T, root, name string, rt *bundle.Runtime) bundle.Bundle {
	t.Helper()
	dir := filepath.Join(root, bundle.ServicesDir, name)
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := bundle.MarshalConfig(&specs.Spec{Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"/bin/true"}}})
	rtj, _ := bundle.MarshalRuntime(rt)
	if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.RuntimeFile), rtj, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle.Bundle{Kind: bundle.Service, Name: name, Path: dir}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// db turns healthy only once allowed; app waits for db healthy, worker
// for app started, solo for nothing. Shutdown stops dependents first.
func TestServicesDependencies(t *testing.T) {
	root := t.TempDir()
	// Failed checks in the start period do not count, so db stays
	// "starting" however slowly this test gets round to allowing it: with
	// a count of failures, a loaded machine could see db turn unhealthy
	// and restart before the stop order is checked.
	hc := &bundle.Healthcheck{Test: []string{"CMD-SHELL", "test -e /ready"}, Interval: "1ms", Timeout: "1s", StartPeriod: "1h", Retries: 1}
	bundles := []bundle.Bundle{
		writeServiceBundle(t, root, "worker", &bundle.Runtime{DependsOn: []bundle.Dependency{{Service: "app", Condition: bundle.ConditionStarted}}}),
		writeServiceBundle(t, root, "app", &bundle.Runtime{DependsOn: []bundle.Dependency{{Service: "db", Condition: bundle.ConditionHealthy}}}),
		writeServiceBundle(t, root, "db", &bundle.Runtime{Healthcheck: hc}),
		writeServiceBundle(t, root, "solo", &bundle.Runtime{}),
	}
	ev := &events{}
	var ready atomic.Bool
	var healthy []string
	var hmu sync.Mutex
	s := &Services{
		Preparer: &Preparer{Mounts: &mount.Table{}},
		Log:      slog.New(slog.DiscardHandler),
		LogDir:   filepath.Join(root, "log"),
		Healthy: func(name string) {
			hmu.Lock()
			healthy = append(healthy, name)
			hmu.Unlock()
			ev.add("healthy " + name)
		},
		runnerFor: func(name string, _ *Prepared, _ io.Writer) Runner { return &recordingRunner{name: name, ev: ev} },
		probeFor: func(*HealthCheck, Process) (Probe, error) {
			return func(context.Context) (string, error) {
				if ready.Load() {
					return "ready", nil
				}
				return "not yet", errors.New("exit 1")
			}, nil
		},
	}
	s.Start(context.Background(), bundles)
	// Start returned: the services that wait for nothing run.
	if ev.index("start db") < 0 || ev.index("start solo") < 0 {
		t.Fatalf("after Start: %s", ev)
	}
	eventually(t, "app waiting for db", func() bool {
		return strings.Contains(serviceStatus(s, "app").WaitingFor, "db (healthy; it is starting)")
	})
	eventually(t, "worker waiting for app", func() bool {
		return strings.Contains(serviceStatus(s, "worker").WaitingFor, "app (started; it is waiting)")
	})
	if ev.index("start app") >= 0 || ev.index("start worker") >= 0 {
		t.Fatalf("started before db was healthy: %s", ev)
	}
	ready.Store(true)
	eventually(t, "worker started", func() bool { return ev.index("start worker") >= 0 })
	if !(ev.index("healthy db") < ev.index("start app") && ev.index("start app") < ev.index("start worker")) {
		t.Fatalf("order: %s", ev)
	}
	if st := serviceStatus(s, "app"); st.WaitingFor != "" || st.State != StateRunning {
		t.Errorf("app once started: %+v", st)
	}

	if err := s.StopServices(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !(ev.index("exited worker") < ev.index("stop app") && ev.index("exited app") < ev.index("stop db")) {
		t.Fatalf("stop order along the edges: %s", ev)
	}
}

// A dependency that never gets there leaves its dependent waiting, and
// saying why, while the others run; a stop ends the wait.
func TestServicesDependencyNeverHealthy(t *testing.T) {
	root := t.TempDir()
	hc := &bundle.Healthcheck{Test: []string{"TCP", "127.0.0.1:1"}, Interval: "1ms", Timeout: "1s", StartPeriod: "0s", Retries: 2}
	bundles := []bundle.Bundle{
		writeServiceBundle(t, root, "db", &bundle.Runtime{Healthcheck: hc, Restart: bundle.RestartNever}),
		writeServiceBundle(t, root, "app", &bundle.Runtime{DependsOn: []bundle.Dependency{{Service: "db", Condition: bundle.ConditionHealthy}}}),
	}
	ev := &events{}
	s := &Services{
		Preparer:  &Preparer{Mounts: &mount.Table{}},
		LogDir:    filepath.Join(root, "log"),
		runnerFor: func(name string, _ *Prepared, _ io.Writer) Runner { return &recordingRunner{name: name, ev: ev} },
		probeFor: func(*HealthCheck, Process) (Probe, error) {
			return func(context.Context) (string, error) { return "", errors.New("connection refused") }, nil
		},
	}
	s.Start(context.Background(), bundles)
	eventually(t, "app waiting for an unhealthy db", func() bool {
		return serviceStatus(s, "app").WaitingFor == "db (healthy; it is unhealthy)"
	})
	if st := serviceStatus(s, "db"); st.State != StateRunning || st.Health == nil || st.Health.State != HealthUnhealthy {
		t.Fatalf("db: %+v", st)
	}
	if err := s.StopServices(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev.index("start app") >= 0 {
		t.Fatalf("app started: %s", ev)
	}
	if st := serviceStatus(s, "app"); st.State != StateStopped {
		t.Fatalf("app after the stop: %+v", st)
	}
}

// A run that turns unhealthy is stopped and, by its policy, started again:
// under on-failure too when it exits 0 on the SIGTERM (it did not fail on
// its own, its health check did).
func TestUnitUnhealthyRestarts(t *testing.T) {
	f := newFakeRunner(fakeRun{cleanTerm: true})
	var fails atomic.Int32
	u := &Unit{Name: "service db", Runner: f, Policy: OnFailure, Backoff: fastBackoff, Grace: time.Hour,
		Health: &HealthCheck{Interval: time.Millisecond, Timeout: time.Second, Retries: 2},
		ProbeFor: func(*HealthCheck, Process) (Probe, error) {
			return func(context.Context) (string, error) { fails.Add(1); return "", errors.New("exit 1") }, nil
		}}
	done := runUnit(u)
	p := f.next(t)
	f.next(t) // started again after the first run turned unhealthy
	if got := p.got(); len(got) == 0 || got[0] != unix.SIGTERM {
		t.Fatalf("the unhealthy run got %v, want SIGTERM", got)
	}
	_ = u.Stop(context.Background())
	outcome(t, done)
	if u.Status().Restarts < 1 || fails.Load() < 2 {
		t.Fatalf("status %+v, %d failed checks", u.Status(), fails.Load())
	}
}
