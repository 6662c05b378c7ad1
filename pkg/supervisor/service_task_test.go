package supervisor

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestSignalsDirectly(t *testing.T) {
	for _, c := range []struct {
		sig      unix.Signal
		ownPidNS bool
		want     bool
	}{
		{unix.SIGTERM, true, true},
		{unix.SIGTERM, false, true}, // task.Kill signals the one process too
		{unix.SIGHUP, false, true},
		{unix.SIGKILL, true, true}, // the kernel ends the whole namespace
		{unix.SIGKILL, false, false},
	} {
		if got := signalsDirectly(c.sig, c.ownPidNS); got != c.want {
			t.Errorf("signalsDirectly(%s, ownPidNS %v) = %v, want %v", unix.SignalName(c.sig), c.ownPidNS, got, c.want)
		}
	}
}

func TestOwnsPidNamespace(t *testing.T) {
	withNS := func(ns ...specs.LinuxNamespace) *specs.Spec {
		return &specs.Spec{Linux: &specs.Linux{Namespaces: ns}}
	}
	for _, c := range []struct {
		name string
		spec *specs.Spec
		want bool
	}{
		{"new pid namespace", withNS(specs.LinuxNamespace{Type: specs.MountNamespace}, specs.LinuxNamespace{Type: specs.PIDNamespace}), true},
		{"joined by path", withNS(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}), false},
		{"host pid namespace", withNS(specs.LinuxNamespace{Type: specs.NetworkNamespace}), false},
		{"no linux section", &specs.Spec{}, false},
		{"no spec", nil, false},
	} {
		if got := ownsPidNamespace(c.spec); got != c.want {
			t.Errorf("%s: ownsPidNamespace = %v, want %v", c.name, got, c.want)
		}
	}
}
