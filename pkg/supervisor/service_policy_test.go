package supervisor

import (
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": OnFailure, "always": Always, "on-failure": OnFailure, "never": Never} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if p, err := ParsePolicy("sometimes"); err == nil || p != OnFailure {
		t.Errorf("bad policy: got %v, %v; want on-failure and an error", p, err)
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		code int
		want bool
	}{
		{Always, 0, true}, {Always, 1, true},
		{OnFailure, 0, false}, {OnFailure, 1, true}, {OnFailure, 137, true},
		{Never, 0, false}, {Never, 1, false},
	} {
		if got := tc.p.ShouldRestart(tc.code); got != tc.want {
			t.Errorf("%s.ShouldRestart(%d) = %v", tc.p, tc.code, got)
		}
	}
}

func TestParseGrace(t *testing.T) {
	if d, err := ParseGrace(""); err != nil || d != DefaultStopGrace {
		t.Errorf("empty: %v %v", d, err)
	}
	if d, err := ParseGrace("2s"); err != nil || d != 2*time.Second {
		t.Errorf("2s: %v %v", d, err)
	}
	for _, bad := range []string{"10", "-1s", "soon"} {
		if d, err := ParseGrace(bad); err == nil || d != DefaultStopGrace {
			t.Errorf("%q: %v %v, want the default and an error", bad, d, err)
		}
	}
}

func TestBackoffDoublesCapsAndResets(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Reset: 10 * time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next(0))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	if !b.CrashLooping() {
		t.Error("not crash-looping after six quick deaths")
	}
	if d := b.Next(10 * time.Second); d != 100*time.Millisecond {
		t.Errorf("after staying up for the reset time: %v, want the initial delay", d)
	}
	if b.CrashLooping() {
		t.Error("still crash-looping after a reset")
	}
	// Up for a while but less than Reset: the backoff keeps growing.
	if d := b.Next(5 * time.Second); d != 200*time.Millisecond {
		t.Errorf("got %v, want 200ms", d)
	}
}

func TestContainerdConfig(t *testing.T) {
	c := containerdConfig("/var/lib/containerd", "/run/containerd", "/run/containerd/containerd.sock")
	for _, want := range []string{
		"version = 3\n",
		"root = \"/var/lib/containerd\"\n",
		"state = \"/run/containerd\"\n",
		"[grpc]\n  address = \"/run/containerd/containerd.sock\"\n",
		"\"io.containerd.grpc.v1.cri\"",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}
