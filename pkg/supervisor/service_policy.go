package supervisor

import (
	"fmt"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
)

// Policy is a service's restart policy, runtime.json's "restart".
type Policy string

const (
	Always    Policy = bundle.RestartAlways
	OnFailure Policy = bundle.RestartOnFailure
	Never     Policy = bundle.RestartNever
)

// ParsePolicy reads runtime.json's restart value; empty is OnFailure, the
// default for services.
func ParsePolicy(s string) (Policy, error) {
	switch Policy(s) {
	case "":
		return OnFailure, nil
	case Always, OnFailure, Never:
		return Policy(s), nil
	}
	return OnFailure, fmt.Errorf("unknown restart policy %q (want always, on-failure or never)", s)
}

// ShouldRestart says whether a service that exited with code should be
// started again. A service stopped by keel (shutdown) never is.
func (p Policy) ShouldRestart(code int) bool {
	switch p {
	case Always:
		return true
	case Never:
		return false
	}
	return code != 0
}

// DefaultStopGrace is a service's time between SIGTERM and SIGKILL when
// runtime.json gives none.
const DefaultStopGrace = 10 * time.Second

// ParseGrace reads runtime.json's stopGracePeriod; empty is DefaultStopGrace.
func ParseGrace(s string) (time.Duration, error) {
	if s == "" {
		return DefaultStopGrace, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return DefaultStopGrace, fmt.Errorf("bad stopGracePeriod %q: want a duration like 10s", s)
	}
	return d, nil
}

// Backoff is the delay before each restart: Initial after the first
// failure, doubled after each further one up to Max, and back to Initial
// once the process stayed up for Reset.
type Backoff struct {
	Initial, Max, Reset time.Duration
	next                time.Duration
}

// DefaultBackoff is the services' restart backoff.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Reset: 30 * time.Second}
}

// Next returns the delay before restarting a process that ran for up.
func (b *Backoff) Next(up time.Duration) time.Duration {
	if b.next == 0 || up >= b.Reset {
		b.next = b.Initial
	}
	d := b.next
	b.next = min(b.next*2, b.Max)
	return d
}

// CrashLooping reports whether the backoff has grown past its first steps,
// i.e. the process keeps dying soon after each start.
func (b *Backoff) CrashLooping() bool { return b.next > 4*b.Initial }
