package main

import (
	"math"
	"testing"
	"time"
)

func feedAll(k kind, lines map[time.Duration]string, order []time.Duration) *boot {
	b := newBoot()
	for _, t := range order {
		k.feed(b, t, lines[t])
	}
	return b
}

func TestKeelLines(t *testing.T) {
	s := time.Second
	order := []time.Duration{1 * s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 9 * s}
	lines := map[time.Duration]string{
		1 * s: "[    2.104512] keel: switched root off initramfs copy=false duration=30ms",
		2 * s: "[    2.200000] keel: init started pid=1",
		3 * s: "[    3.000000] 000-onboot-1: onboot-1",
		4 * s: "[    4.500000] keel: onboot done count=5",
		5 * s: "[    9.250000] keel: services started count=3 running=3 duration=2s",
		6 * s: "/ # grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; poweroff",
		7 * s: "MemTotal:         996624 kB",
		8 * s: "MemAvailable:     792000 kB",
		9 * s: "[   10.000000] keel: shutdown power-off",
	}
	b := feedAll(keelKind{}, lines, order)
	b.hostExit = 15 * s
	want := []float64{1, 4.5 - 2.104512, 9.25 - 2.104512, 5, 6, float64(996624-792000) / 1024}
	for i, m := range metrics {
		if got := m.get(b); math.Abs(got-want[i]) > 1e-9 {
			t.Errorf("%s = %v, want %v", m.label, got, want[i])
		}
	}
	if !keelReady(lines[5*s]) || keelReady(lines[4*s]) || keelReady("services started") {
		t.Error("keelReady")
	}
	if !keelShell("[    4.600000] keel: console shell started") {
		t.Error("keelShell")
	}
}

func TestBaselineLines(t *testing.T) {
	s := time.Second
	order := []time.Duration{1 * s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s}
	lines := map[time.Duration]string{
		1 * s: "INIT-START 3.11 0.00",
		2 * s: " - 005-onboot-5\rONBOOT-DONE 12.52 0.01",
		3 * s: "BASELINE-READY 21.40 0.01",
		4 * s: "MEM Mem:         996624      105828      792012       88924       98784      725700",
		5 * s: "POWEROFF-CMD 23.77 1.93",
		6 * s: "BASELINE-READY 99.0 0.01", // only the first counts
	}
	b := feedAll(baselineKind{}, lines, order)
	b.hostExit = 12 * s
	want := []float64{1, 12.52 - 3.11, 21.40 - 3.11, 3, 7, float64(996624-725700) / 1024}
	for i, m := range metrics {
		if got := m.get(b); math.Abs(got-want[i]) > 1e-9 {
			t.Errorf("%s = %v, want %v", m.label, got, want[i])
		}
	}
	if !baselineReady(lines[3*s]) || baselineReady(lines[1*s]) {
		t.Error("baselineReady")
	}
}

func TestMissingMarks(t *testing.T) {
	b := feedAll(keelKind{}, map[time.Duration]string{0: "[    2.2] keel: init started"}, []time.Duration{0})
	for _, m := range metrics[1:] {
		if v := m.get(b); !math.IsNaN(v) {
			t.Errorf("%s = %v with its mark missing", m.label, v)
		}
	}
	if _, ok := marker("INIT-START", "INIT-START"); ok {
		t.Error("a marker with no value")
	}
	if _, ok := marker("INIT-START x", "INIT-START"); ok {
		t.Error("a marker with a bad value")
	}
}

func TestMedianRatio(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in   []float64
		want float64
		n    int
	}{
		{[]float64{3, 1, 2}, 2, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4},
		{[]float64{5, nan, 1}, 3, 2},
		{[]float64{nan}, nan, 0},
		{nil, nan, 0},
	} {
		got, n := median(c.in)
		if n != c.n || !(got == c.want || math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("median(%v) = %v, %d; want %v, %d", c.in, got, n, c.want, c.n)
		}
	}
	if r := ratio(3, 2); r != 1.5 {
		t.Errorf("ratio(3, 2) = %v", r)
	}
	if !math.IsNaN(ratio(1, 0)) || !math.IsNaN(ratio(nan, 1)) {
		t.Error("ratio of a missing value")
	}
	if fmtRatio(1.5) != "1.50x" || fmtRatio(nan) != "n/a" || fmtNum(nan, 1) != "n/a" {
		t.Error("formatting")
	}
}

func TestKeelAfterPrompt(t *testing.T) {
	if !keelReady("/ # [    9.250000] keel: services started count=3 running=3") {
		t.Error("a keel line after the shell's prompt")
	}
}

func TestHopeless(t *testing.T) {
	for _, l := range []string{
		"[    2.088767] Initramfs unpacking failed: write error",
		"[  2.854998] keel: no services, containerd not started",
	} {
		if !hopeless(l) {
			t.Errorf("hopeless(%q) = false", l)
		}
	}
	if hopeless("[  9.1] keel: services started count=3") {
		t.Error("hopeless on ready")
	}
}

// A kernel+squashfs boot's first keel line comes before its /init runs
// again from the disk and says "init started": /init's start is that
// first line.
func TestKeelSquashfsInitIsFirstLine(t *testing.T) {
	s := time.Second
	order := []time.Duration{1 * s, 2 * s, 3 * s}
	lines := map[time.Duration]string{
		1 * s: "[    1.900000] keel: squashfs root: modules loaded=virtio_blk,squashfs,overlay failed=0",
		2 * s: "[    2.300000] keel: root on squashfs device=/dev/vda1 partition=keel-0 freed=13000kB duration=400ms",
		3 * s: "[    2.400000] keel: init started pid=1",
	}
	b := feedAll(keelKind{label: "keel-sqfs"}, lines, order)
	if b.guestInit != 1.9 || b.hostInit != 1*s {
		t.Errorf("/init at guest %v host %v, want 1.9 and 1s", b.guestInit, b.hostInit)
	}
}
