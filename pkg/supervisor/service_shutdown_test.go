package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type fakeStopper struct {
	rec  *recorder
	name string
}

func (f fakeStopper) StopServices(ctx context.Context) error {
	f.rec.calls = append(f.rec.calls, "stop "+f.name)
	return nil
}

func (f fakeStopper) Stop(ctx context.Context) error {
	f.rec.calls = append(f.rec.calls, "stop "+f.name)
	return nil
}

// The services stop before containerd, and both before every other
// process is signalled.
func TestShutdownStopsServicesThenContainerd(t *testing.T) {
	rec := &recorder{}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{}, rec, unix.SIGTERM, &log)
	s.Services = fakeStopper{rec, "services"}
	s.Containerd = fakeStopper{rec, "containerd"}
	if err := s.Run(PowerOff); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop services", "stop containerd", "kill SIGTERM"}
	if len(rec.calls) < 3 || !slices.Equal(rec.calls[:3], want) {
		t.Errorf("calls %q, want them to start with %q", rec.calls, want)
	}
}
