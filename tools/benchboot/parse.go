package main

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A boot's console, read line by line with the host time of each line
// since QEMU started. Guest times are the guest's own clock in seconds
// since boot: /proc/uptime in the baseline's markers, the printk-style
// stamp on keel's lines.
type boot struct {
	// host times since QEMU started, of the first line carrying each mark
	hostInit, hostReady, hostPoweroff time.Duration
	hostExit                          time.Duration
	// guest times, in seconds since boot; NaN until seen
	guestInit, guestOnboot, guestReady float64
	// memory used once ready (MemTotal - MemAvailable), kB; -1 until seen
	memTotal, memAvail int64
	exited             bool
}

func newBoot() *boot {
	return &boot{
		hostInit: -1, hostReady: -1, hostPoweroff: -1, hostExit: -1,
		guestInit: math.NaN(), guestOnboot: math.NaN(), guestReady: math.NaN(),
		memTotal: -1, memAvail: -1,
	}
}

// The marks a console line may carry, for one kind of system.
type kind interface {
	// feed reads one console line seen at host time t.
	feed(b *boot, t time.Duration, line string)
	name() string
}

// keelStamp is keel's console line, "[   2.104512] keel: ...", anywhere in
// a serial line (the console shell's prompt may come first).
var keelStamp = regexp.MustCompile(`\[\s*(\d+\.\d+)\] keel: (.*)$`)

// meminfoRE is a /proc/meminfo line, as the console shell prints it.
var meminfoRE = regexp.MustCompile(`^(MemTotal|MemAvailable):\s+(\d+) kB`)

// keelKind reads keel's console. label names the image's format when
// there are two ("keel-sqfs"); "" is "keel".
type keelKind struct{ label string }

func (k keelKind) name() string {
	if k.label != "" {
		return k.label
	}
	return "keel"
}

func (keelKind) feed(b *boot, t time.Duration, line string) {
	if m := meminfoRE.FindStringSubmatch(line); m != nil {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		if m[1] == "MemTotal" {
			b.memTotal = n
		} else {
			b.memAvail = n
		}
		return
	}
	m := keelStamp.FindStringSubmatch(line)
	if m == nil {
		return
	}
	ts, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return
	}
	msg := m[2]
	// /init's start is its first line: "init started" comes after the
	// root is switched, and a kernel+squashfs boot first mounts its disk
	// and starts /init again from it, all of which counts.
	setOnce(&b.guestInit, ts)
	setHostOnce(&b.hostInit, t)
	switch {
	case strings.HasPrefix(msg, "onboot done"):
		setOnce(&b.guestOnboot, ts)
	case strings.HasPrefix(msg, "services started"):
		setOnce(&b.guestReady, ts)
		setHostOnce(&b.hostReady, t)
	case strings.HasPrefix(msg, "shutdown power-off"), strings.HasPrefix(msg, "oneshot:"):
		setHostOnce(&b.hostPoweroff, t)
	}
}

// keelReady reports whether the line says the services run.
func keelReady(line string) bool {
	m := keelStamp.FindStringSubmatch(line)
	return m != nil && strings.HasPrefix(m[2], "services started")
}

// keelShell reports whether the line says the console shell runs.
func keelShell(line string) bool {
	m := keelStamp.FindStringSubmatch(line)
	return m != nil && strings.HasPrefix(m[2], "console shell started")
}

type baselineKind struct{}

func (baselineKind) name() string { return "baseline" }

func (baselineKind) feed(b *boot, t time.Duration, line string) {
	if v, ok := marker(line, "INIT-START"); ok {
		setOnce(&b.guestInit, v)
		setHostOnce(&b.hostInit, t)
	} else if v, ok := marker(line, "ONBOOT-DONE"); ok {
		setOnce(&b.guestOnboot, v)
	} else if v, ok := marker(line, "BASELINE-READY"); ok {
		setOnce(&b.guestReady, v)
		setHostOnce(&b.hostReady, t)
	} else if _, ok := marker(line, "POWEROFF-CMD"); ok {
		setHostOnce(&b.hostPoweroff, t)
	} else if total, avail, ok := freeMem(line); ok && b.memTotal < 0 {
		b.memTotal, b.memAvail = total, avail
	}
}

func baselineReady(line string) bool {
	_, ok := marker(line, "BASELINE-READY")
	return ok
}

// marker finds "NAME <uptime> <idle>" anywhere in line (the serial line
// may carry other output before it) and returns the uptime.
func marker(line, name string) (float64, bool) {
	i := strings.Index(line, name+" ")
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(line[i+len(name)+1:])
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// freeMem reads the baseline's "MEM Mem: total used free shared
// buff/cache available" line (busybox free, kB) and returns total and
// available.
func freeMem(line string) (total, avail int64, ok bool) {
	i := strings.Index(line, "MEM Mem:")
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(line[i+len("MEM Mem:"):])
	if len(f) < 6 {
		return 0, 0, false
	}
	t, err1 := strconv.ParseInt(f[0], 10, 64)
	a, err2 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return t, a, true
}

func setOnce(p *float64, v float64) {
	if math.IsNaN(*p) {
		*p = v
	}
}

func setHostOnce(p *time.Duration, t time.Duration) {
	if *p < 0 {
		*p = t
	}
}

// The metrics of one boot; NaN where a mark is missing.
type metric struct {
	label string
	unit  string
	get   func(b *boot) float64
}

func hostSec(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return d.Seconds()
}

var metrics = []metric{
	{"QEMU start -> /init (host)", "s", func(b *boot) float64 { return hostSec(b.hostInit) }},
	{"/init -> onboot done (guest)", "s", func(b *boot) float64 { return b.guestOnboot - b.guestInit }},
	{"/init -> services running (guest)", "s", func(b *boot) float64 { return b.guestReady - b.guestInit }},
	{"QEMU start -> services running (host)", "s", func(b *boot) float64 { return hostSec(b.hostReady) }},
	{"power-off request -> QEMU exit (host)", "s", func(b *boot) float64 {
		if b.hostPoweroff < 0 || b.hostExit < 0 {
			return math.NaN()
		}
		return (b.hostExit - b.hostPoweroff).Seconds()
	}},
	{"memory used once ready", "MiB", func(b *boot) float64 {
		if b.memTotal < 0 || b.memAvail < 0 {
			return math.NaN()
		}
		return float64(b.memTotal-b.memAvail) / 1024
	}},
}

// median of the values that are not NaN, and how many there were.
func median(vs []float64) (float64, int) {
	var s []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN(), 0
	}
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], n
	}
	return (s[n/2-1] + s[n/2]) / 2, n
}

// ratio is keel/baseline, NaN when either is missing or the baseline is 0.
func ratio(keel, base float64) float64 {
	if math.IsNaN(keel) || math.IsNaN(base) || base == 0 {
		return math.NaN()
	}
	return keel / base
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", r)
}

// hopeless reports whether the line says the services will never run: a
// short memory makes the kernel unpack only part of the initramfs, and
// keel then boots what it got, with no services.
func hopeless(line string) bool {
	if strings.Contains(line, "Initramfs unpacking failed") {
		return true
	}
	m := keelStamp.FindStringSubmatch(line)
	return m != nil && strings.HasPrefix(m[2], "no services")
}
