package supervisor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
)

// fakeClock moves only when told to; After fires when the time is reached.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
	waiting chan struct{} // a send per After call
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeTimer{c.now.Add(d), ch})
	c.waiting <- struct{}{}
	return ch
}

// advance moves the clock by d, firing the timers due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.c <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// scriptedProbe answers each check from a list; it blocks until told.
type scriptedProbe struct {
	results chan error
	calls   chan struct{}
}

func (p *scriptedProbe) probe(ctx context.Context) (string, error) {
	p.calls <- struct{}{}
	select {
	case err := <-p.results:
		if err != nil {
			return "db not ready", err
		}
		return "ok", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// harness runs a monitor with a fake clock; each tick advances to the
// next check and answers it.
type healthHarness struct {
	t       *testing.T
	clock   *fakeClock
	probe   *scriptedProbe
	m       *healthMonitor
	changes chan HealthStatus
	cancel  context.CancelFunc
	done    chan struct{}
}

func newHealthHarness(t *testing.T, check *HealthCheck) *healthHarness {
	h := &healthHarness{t: t, clock: newFakeClock(), probe: &scriptedProbe{results: make(chan error), calls: make(chan struct{})},
		changes: make(chan HealthStatus, 100), done: make(chan struct{})}
	h.m = newHealthMonitor(check, h.probe.probe, h.clock, func(st HealthStatus) { h.changes <- st })
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.m.run(ctx); close(h.done) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// check lets the next check happen, interval later, and answers it.
func (h *healthHarness) check(interval time.Duration, result error) HealthStatus {
	h.t.Helper()
	select {
	case <-h.clock.waiting:
	case <-time.After(time.Minute):
		h.t.Fatal("the monitor does not wait for its next check")
	}
	h.clock.advance(interval)
	select {
	case <-h.probe.calls:
	case <-time.After(time.Minute):
		h.t.Fatal("no check after the interval")
	}
	h.probe.results <- result
	// The state is recorded before the monitor waits again.
	select {
	case <-h.clock.waiting:
		h.clock.waiting <- struct{}{} // put it back for the next check
	case <-time.After(time.Minute):
		h.t.Fatal("the monitor did not go on after a check")
	}
	return h.m.status()
}

var errProbe = errors.New("exit 1")

func TestHealthStates(t *testing.T) {
	hc := &HealthCheck{Interval: 2 * time.Second, Timeout: time.Second, Retries: 3}
	h := newHealthHarness(t, hc)
	if st := h.m.status(); st.State != HealthStarting {
		t.Fatalf("before any check: %+v", st)
	}
	if st := h.check(2*time.Second, errProbe); st.State != HealthStarting || st.FailingStreak != 1 {
		t.Fatalf("after one failure: %+v", st)
	}
	if st := h.check(2*time.Second, nil); st.State != HealthHealthy || st.FailingStreak != 0 || st.LastOutput != "ok" {
		t.Fatalf("after a pass: %+v", st)
	}
	h.check(2*time.Second, errProbe)
	if st := h.check(2*time.Second, errProbe); st.State != HealthHealthy || st.FailingStreak != 2 {
		t.Fatalf("two failures of three: %+v", st)
	}
	st := h.check(2*time.Second, errProbe)
	if st.State != HealthUnhealthy || st.FailingStreak != 3 || st.LastOutput != "db not ready\nexit 1" {
		t.Fatalf("after three failures in a row: %+v", st)
	}
	if st := h.check(2*time.Second, nil); st.State != HealthHealthy {
		t.Fatalf("a pass after unhealthy: %+v", st)
	}
	var got []string
	for len(h.changes) > 0 {
		got = append(got, (<-h.changes).State)
	}
	if want := []string{HealthHealthy, HealthUnhealthy, HealthHealthy}; !equalStrings(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

func TestHealthStartPeriod(t *testing.T) {
	hc := &HealthCheck{Interval: time.Second, Timeout: time.Second, StartPeriod: 5 * time.Second, Retries: 1}
	h := newHealthHarness(t, hc)
	for i := 1; i <= 4; i++ {
		if st := h.check(time.Second, errProbe); st.State != HealthStarting || st.FailingStreak != 0 {
			t.Fatalf("failure %d inside the start period counted: %+v", i, st)
		}
	}
	// Past the start period, one failure (Retries: 1) is enough.
	h.check(time.Second, errProbe) // at 5 s: no longer inside
	if st := h.m.status(); st.State != HealthUnhealthy {
		t.Fatalf("after the start period: %+v", st)
	}
}

func TestHealthTimeout(t *testing.T) {
	hc := &HealthCheck{Interval: time.Second, Timeout: 10 * time.Millisecond, Retries: 1}
	clock := newFakeClock()
	changes := make(chan HealthStatus, 10)
	hang := func(ctx context.Context) (string, error) { <-ctx.Done(); return "", nil }
	m := newHealthMonitor(hc, hang, clock, func(st HealthStatus) { changes <- st })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.run(ctx)
	<-clock.waiting
	clock.advance(time.Second)
	select {
	case st := <-changes:
		if st.State != HealthUnhealthy || st.LastOutput != context.DeadlineExceeded.Error() {
			t.Fatalf("a check past its timeout: %+v", st)
		}
	case <-time.After(time.Minute):
		t.Fatal("a hanging check was not given up at its timeout")
	}
}

func TestParseHealthcheck(t *testing.T) {
	hc, err := parseHealthcheck(&bundle.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: "2s", Timeout: "1s", StartPeriod: "0s", Retries: 3})
	if err != nil || hc.Interval != 2*time.Second || hc.Timeout != time.Second || hc.Retries != 3 {
		t.Fatalf("%+v, %v", hc, err)
	}
	if hc, err := parseHealthcheck(nil); hc != nil || err != nil {
		t.Fatalf("none: %+v, %v", hc, err)
	}
	for _, bad := range []*bundle.Healthcheck{
		{Test: []string{"CMD-SHELL", "true"}, Interval: "soon"},
		{Test: []string{"CMD-SHELL", "true"}, Interval: "0s"},
		{Test: []string{"HTTP", "x"}, Interval: "1s"},
		{Test: []string{"CMD"}, Interval: "1s"},
	} {
		if _, err := parseHealthcheck(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
