package supervisor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
)

// Health states, as Docker's.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Probe runs one health check: it returns what the check printed and
// nil when it passed. It must give up when ctx is done (the check's
// timeout).
type Probe func(ctx context.Context) (output string, err error)

// HealthCheck is a service's health check, read from runtime.json.
type HealthCheck struct {
	Test                           []string
	Interval, Timeout, StartPeriod time.Duration
	Retries                        int
}

// parseHealthcheck reads runtime.json's healthcheck; nil is none.
func parseHealthcheck(h *bundle.Healthcheck) (*HealthCheck, error) {
	if h == nil {
		return nil, nil
	}
	hc := &HealthCheck{Test: h.Test, Retries: h.Retries}
	for _, d := range []struct {
		name string
		s    string
		to   *time.Duration
		def  time.Duration
	}{
		{"interval", h.Interval, &hc.Interval, 30 * time.Second},
		{"timeout", h.Timeout, &hc.Timeout, 30 * time.Second},
		{"startPeriod", h.StartPeriod, &hc.StartPeriod, 0},
	} {
		*d.to = d.def
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("healthcheck %s %q: want a duration like 30s", d.name, d.s)
		}
		*d.to = v
	}
	if hc.Interval <= 0 || hc.Timeout <= 0 {
		return nil, fmt.Errorf("healthcheck: interval and timeout must be more than 0")
	}
	if hc.Retries <= 0 {
		hc.Retries = 3
	}
	if len(hc.Test) < 2 {
		return nil, fmt.Errorf("healthcheck test %q: want [CMD, prog, args...], [CMD-SHELL, command] or [TCP, host:port]", hc.Test)
	}
	switch hc.Test[0] {
	case bundle.HealthCmd, bundle.HealthCmdShell, bundle.HealthTCP:
	default:
		return nil, fmt.Errorf("healthcheck test: unknown form %q", hc.Test[0])
	}
	return hc, nil
}

// HealthStatus is a service's health as status shows it.
type HealthStatus struct {
	State string `json:"state"`
	// FailingStreak is how many checks in a row failed.
	FailingStreak int       `json:"failingStreak"`
	LastCheck     time.Time `json:"lastCheck,omitzero"`
	// LastOutput is the end of the last check's output (or its error).
	LastOutput string `json:"lastOutput,omitempty"`
}

// clock is time, replaced in tests.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// healthMonitor checks one run of a service until ctx is done: starting
// until a check passes; healthy after a pass; unhealthy after Retries
// failures in a row. Failures within StartPeriod of the start do not
// count, as in Docker; a pass within it still makes the service healthy.
type healthMonitor struct {
	check  *HealthCheck
	probe  Probe
	clock  clock
	change func(HealthStatus) // called on every change of state

	mu sync.Mutex
	st HealthStatus
}

// maxHealthOutput bounds what is kept of a check's output.
const maxHealthOutput = 512

func newHealthMonitor(check *HealthCheck, probe Probe, c clock, change func(HealthStatus)) *healthMonitor {
	if c == nil {
		c = realClock{}
	}
	return &healthMonitor{check: check, probe: probe, clock: c, change: change, st: HealthStatus{State: HealthStarting}}
}

func (m *healthMonitor) status() HealthStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// run checks every Interval, the first one Interval after the start.
func (m *healthMonitor) run(ctx context.Context) {
	started := m.clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.clock.After(m.check.Interval):
		}
		pctx, cancel := context.WithTimeout(ctx, m.check.Timeout)
		out, err := m.probe(pctx)
		timedOut := pctx.Err() == context.DeadlineExceeded
		cancel()
		if ctx.Err() != nil {
			return // the run ended meanwhile: this check says nothing
		}
		if timedOut && err == nil {
			err = context.DeadlineExceeded
		}
		m.record(started, out, err)
	}
}

func (m *healthMonitor) record(started time.Time, out string, err error) {
	now := m.clock.Now()
	if err != nil {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += err.Error()
	}
	if len(out) > maxHealthOutput {
		out = "..." + out[len(out)-maxHealthOutput:]
	}
	m.mu.Lock()
	old := m.st.State
	m.st.LastCheck, m.st.LastOutput = now, strings.TrimSpace(out)
	switch {
	case err == nil:
		m.st.State, m.st.FailingStreak = HealthHealthy, 0
	case now.Sub(started) < m.check.StartPeriod && m.st.State == HealthStarting:
		// Still starting up: not counted.
	default:
		m.st.FailingStreak++
		if m.st.FailingStreak >= m.check.Retries {
			m.st.State = HealthUnhealthy
		}
	}
	st := m.st
	m.mu.Unlock()
	if st.State != old && m.change != nil {
		m.change(st)
	}
}
