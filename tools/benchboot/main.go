// Command benchboot measures keel's boot against a baseline that does the
// same work the way keel replaces: busybox init, inittab and shell
// scripts, onboot bundles by `runc run` and services by `ctr run`
// (tools/benchboot/baseline). Its containerd, ctr, shim and runc are the
// versions keel ships, built with keel's tags, but as containerd's own build
// makes them: three programs, where keel's PID 1 binary is all three.
// Both boot the same kernel under the same QEMU
// line, alternately, several times; serial lines are timestamped on the
// host. It prints the medians and the keel/baseline ratios.
//
// keel's image is built once in two formats and both are booted: the
// initrd (kernel+initrd, the whole system unpacked into RAM, as the
// baseline) and kernel+squashfs (a small initrd and a virtio disk whose
// squashfs is paged in as read).
//
// The work: 5 onboot bundles that echo; 3 services: svc-a ticks once a
// second in a shell loop with no TERM trap, svc-b and svc-c sleep.
//
//	go run ./tools/benchboot [-keel bin/keel] [-n 5] [-min-mem] [-logs DIR] [-squashfs=false]
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/klauspost/compress/zstd"
)

// qemuArgs is the machine both boot on.
var qemuArgs = []string{"-accel", "tcg", "-M", "q35", "-m", "1024", "-smp", "1", "-nodefaults",
	"-no-reboot", "-display", "none", "-serial", "stdio"}

// The baseline's append words (its README); keel gets the same but the
// baseline's own switch.
const (
	baselineAppend = "console=ttyS0 quiet panic=-1 baseline.poweroff=1"
	keelAppend     = "console=ttyS0 quiet panic=-1"
)

// What keel types on its console shell once its services run: memory the
// way the baseline's `free` line gives it, then power off.
const keelTyped = "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; poweroff\n"

// keelYAML is the baseline's work for keel. The containers get what the
// baseline's `runc spec` bundles have: their own pid, ipc, uts and mount
// namespaces, the host's network, runc's default capabilities, a
// writable root; and the services the baseline's 5 s stop grace.
const keelYAML = `kernel:
  image: keel/kernel:{{.KERNEL_ABI}}
  cmdline: "console=ttyS0"
init:
  - keel/init:{{.KEEL_VERSION}}
onboot:
{{- range $i := .Onboot}}
  - name: onboot-{{$i}}
    image: keel/busybox:{{$.BUSYBOX_TAG}}
    command: ["echo", "onboot-{{$i}}"]
    {{$.Spec}}
    hostname: onboot-{{$i}}
{{- end}}
services:
  - name: svc-a
    image: keel/busybox:{{.BUSYBOX_TAG}}
    command: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo svc-a tick $i $(cat /proc/uptime); sleep 1; done"]
    {{.Spec}}
    hostname: svc-a
    stopGracePeriod: 5s
{{- range $s := .Sleepers}}
  - name: {{$s}}
    image: keel/busybox:{{$.BUSYBOX_TAG}}
    command: ["sleep", "100000"]
    {{$.Spec}}
    hostname: {{$s}}
    stopGracePeriod: 5s
{{- end}}
`

const containerSpec = `uts: new
    ipc: new
    net: host
    readonly: false
    capabilities: [CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]`

func main() {
	keel := flag.String("keel", "bin/keel", "the keel binary that builds keel's image")
	baselineDir := flag.String("baseline", "tools/benchboot/baseline", "the baseline's build.sh and files/")
	versionsFile := flag.String("versions", "tools/versions.env", "pinned versions")
	cache := flag.String("cache", defaultCache(), "keel cache holding the base images and tools (read only)")
	n := flag.Int("n", 5, "boots of each")
	minMem := flag.Bool("min-mem", false, "also bisect the smallest -m (16 MB steps) that boots each to services running")
	memLo := flag.Int("min-mem-lo", 96, "lowest -m the bisection tries, MB")
	timeout := flag.Duration("timeout", 5*time.Minute, "per-boot limit")
	logs := flag.String("logs", "", "keep each boot's timestamped console in this directory")
	buildArgs := flag.String("keel-build-args", "", "more arguments for keel build, space-separated (\"--compress zstd\")")
	keelMore := flag.String("keel-append", "", "more kernel command line words for keel (\"transparent_hugepage=always\")")
	squashfs := flag.Bool("squashfs", true, "also boot keel's kernel+squashfs image")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchboot: ")
	if *n < 1 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	// Ctrl-C or a TERM cancels: QEMU is killed and the temp files removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{keel: *keel, baselineDir: *baselineDir, versionsFile: *versionsFile, cache: *cache,
		n: *n, minMem: *minMem, memLo: *memLo, timeout: *timeout, logs: *logs,
		buildArgs: strings.Fields(*buildArgs), keelAppend: strings.TrimSpace(keelAppend + " " + *keelMore), squashfs: *squashfs}
	if err := b.run(ctx); err != nil {
		stop()
		log.Fatal(err)
	}
}

func defaultCache() string {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "keel")
}

type bench struct {
	keel, baselineDir, versionsFile, cache string
	n                                      int
	minMem                                 bool
	memLo                                  int
	timeout                                time.Duration
	logs                                   string
	buildArgs                              []string
	keelAppend                             string
	squashfs                               bool

	work     string
	kernel   string
	versions map[string]string
	bootNo   int
}

// system is one of the two images under test.
type system struct {
	kind   kind
	initrd string
	// disk, when set, is attached as a read-only virtio disk.
	disk   string
	append string
	ready  func(string) bool
	boots  []*boot
}

func (b *bench) run(ctx context.Context) (err error) {
	for _, p := range []*string{&b.keel, &b.baselineDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if b.versions, err = readVersions(b.versionsFile); err != nil {
		return err
	}
	if b.work, err = os.MkdirTemp("", "keel-benchboot-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.work)
	if b.logs != "" {
		if err := os.MkdirAll(b.logs, 0o755); err != nil {
			return err
		}
	}

	keelSys, sqfsSys, err := b.buildKeel(ctx)
	if err != nil {
		return fmt.Errorf("keel image: %w", err)
	}
	baseSys, err := b.buildBaseline(ctx)
	if err != nil {
		return fmt.Errorf("baseline image: %w", err)
	}
	qemuVersion, _ := exec.Command("qemu-system-x86_64", "--version").Output()
	fmt.Printf("boot benchmark: keel against the busybox-init baseline, %d boots each, alternating\n", b.n)
	fmt.Printf("work: 5 onboot bundles that echo; services svc-a (tick loop, no TERM trap), svc-b, svc-c (sleep)\n")
	fmt.Printf("kernel: keel/kernel:%s (the same bzImage for both); %s", b.versions["KERNEL_ABI"], firstLine(qemuVersion))
	fmt.Printf("qemu %s\n", strings.Join(qemuArgs, " "))
	fmt.Printf("append: baseline %q, keel %q\n", baselineAppend, b.keelAppend)
	if sqfsSys != nil {
		fmt.Printf("keel twice: keel = kernel+initrd (all in RAM, as the baseline); keel-sqfs = kernel+squashfs (small initrd, read-only virtio disk)\n")
	}
	fmt.Printf("containerd %s in both; containerd, ctr and the shim: keel in its PID 1 binary, baseline three programs\n", b.versions["CONTAINERD_VERSION"])
	fmt.Printf("runtime: baseline runc %s (onboot and services); keel runc %s's libcontainer in PID 1 (onboot), crun %s under the shim (services)\n", b.versions["RUNC_VERSION"], b.versions["RUNC_VERSION"], b.versions["CRUN_VERSION"])
	fmt.Printf("ready: baseline BASELINE-READY (ctr task ls shows 3 RUNNING); keel `keel: services started`\n")
	fmt.Printf("memory: MemTotal-MemAvailable once ready; baseline from its MEM line (busybox free: total-available),\n")
	fmt.Printf("        keel from /proc/meminfo, typed on its console shell after `services started`, then `poweroff`\n")
	fmt.Printf("power-off request: baseline POWEROFF-CMD line; keel `keel: shutdown power-off` line (host times)\n\n")

	systems := []*system{keelSys, baseSys}
	if sqfsSys != nil {
		systems = append(systems, sqfsSys)
	}
	for round := 0; round < b.n; round++ {
		// who goes first turns too
		order := slices.Concat(systems[round%len(systems):], systems[:round%len(systems)])
		for _, s := range order {
			bt, err := b.boot(ctx, s, 1024, true)
			if err != nil {
				return err
			}
			s.boots = append(s.boots, bt)
			fmt.Printf("boot %d %-8s /init %6s s  services running %6s s (host)  power-off %6s s  mem %s MiB\n",
				round+1, s.kind.name(), fmtNum(hostSec(bt.hostInit), 2), fmtNum(hostSec(bt.hostReady), 2),
				fmtNum(metrics[4].get(bt), 2), fmtNum(metrics[5].get(bt), 1))
		}
	}

	if err := b.table(keelSys, baseSys, sqfsSys); err != nil {
		return err
	}

	if b.minMem {
		fmt.Printf("\nsmallest -m that boots to services running (16 MB steps, %d..1024):\n", b.memLo)
		for _, s := range systems {
			m, tries, err := b.bisectMem(ctx, s)
			if err != nil {
				return err
			}
			fmt.Printf("  %-8s %s  (%d boots)\n", s.kind.name(), m, tries)
		}
	}

	var load [3]float64
	if lb, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(lb), &load[0], &load[1], &load[2])
	}
	fmt.Printf("\nOnly ratios from one run count: this machine is noisy (TCG, %d CPUs shared; load average %.1f %.1f %.1f).\n",
		runtime.NumCPU(), load[0], load[1], load[2])
	return nil
}

// table prints the medians and the initrd's bytes, one column per
// system: keel, the baseline, then keel-sqfs when it was booted; every
// column but the baseline's has its ratio to the baseline beside it.
func (b *bench) table(keelSys, baseSys, sqfsSys *system) error {
	cols := []*system{keelSys, baseSys}
	if sqfsSys != nil {
		cols = append(cols, sqfsSys)
	}
	row := func(label string, vals []float64, prec int) string {
		line := fmt.Sprintf("%-40s %10s %10s %8s", label, fmtNum(vals[0], prec), fmtNum(vals[1], prec), fmtRatio(ratio(vals[0], vals[1])))
		for _, v := range vals[2:] {
			line += fmt.Sprintf(" %10s %8s", fmtNum(v, prec), fmtRatio(ratio(v, vals[1])))
		}
		return line
	}
	head := fmt.Sprintf("\n%-40s %10s %10s %8s", "median of "+fmt.Sprint(b.n)+" boots", "keel", "baseline", "ratio")
	for _, s := range cols[2:] {
		head += fmt.Sprintf(" %10s %8s", s.kind.name(), "ratio")
	}
	fmt.Println(head)
	for _, m := range metrics {
		var med []float64
		note := ""
		for _, s := range cols {
			var vs []float64
			for _, bt := range s.boots {
				vs = append(vs, m.get(bt))
			}
			v, n := median(vs)
			med = append(med, v)
			if n != b.n {
				note = "  (some boots lack it)"
			}
		}
		prec := 3
		if m.unit == "MiB" {
			prec = 1
		}
		fmt.Println(row(m.label+", "+m.unit, med, prec) + note)
	}
	for _, s := range []struct {
		label string
		gz    bool
	}{{"initrd, compressed", true}, {"initrd, uncompressed", false}} {
		var sizes []float64
		for _, sys := range cols {
			n, err := initrdSize(sys.initrd, s.gz)
			if err != nil {
				return err
			}
			sizes = append(sizes, float64(n)/1e6)
		}
		fmt.Println(row(s.label+", MB", sizes, 1))
	}
	if sqfsSys != nil {
		fi, err := os.Stat(sqfsSys.disk)
		if err != nil {
			return err
		}
		fmt.Printf("%-40s %10s %10s %8s %10s\n", "disk (squashfs, GPT), MB", "-", "-", "", fmtNum(float64(fi.Size())/1e6, 1))
	}
	return nil
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(string(b), "\n")
	return l + "\n"
}

// buildKeel builds keel's image from the cached base images (as an OCI
// layout, into a temporary cache, so the real cache is only read): as an
// initrd and, with b.squashfs, as kernel+squashfs too.
func (b *bench) buildKeel(ctx context.Context) (initrd, sqfs *system, err error) {
	dir := filepath.Join(b.work, "keel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	data := map[string]any{"Onboot": []int{1, 2, 3, 4, 5}, "Sleepers": []string{"svc-b", "svc-c"}, "Spec": containerSpec}
	for k, v := range b.versions {
		data[k] = v
	}
	var y bytes.Buffer
	if err := template.Must(template.New("yaml").Parse(keelYAML)).Execute(&y, data); err != nil {
		return nil, nil, err
	}
	yml := filepath.Join(dir, "bench.yml")
	if err := os.WriteFile(yml, y.Bytes(), 0o644); err != nil {
		return nil, nil, err
	}
	args := []string{"build", "-q", "-no-segment-cache", "-layout", filepath.Join(b.cache, "oci"), "-dir", dir, "--format", "kernel+initrd"}
	if b.squashfs {
		args = append(args, "--format", "kernel+squashfs")
	}
	cmd := exec.CommandContext(ctx, b.keel, append(append(args, b.buildArgs...), yml)...)
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+filepath.Join(dir, "cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("keel build: %v\n%s", err, out)
	}
	b.kernel = filepath.Join(dir, "bench-kernel")
	initrd = &system{kind: keelKind{}, initrd: filepath.Join(dir, "bench-initrd.img"), append: b.keelAppend, ready: keelReady}
	if b.squashfs {
		sqfs = &system{kind: keelKind{label: "keel-sqfs"}, initrd: filepath.Join(dir, "bench-squashfs-initrd.img"),
			disk: filepath.Join(dir, "bench-squashfs.img"), append: b.keelAppend, ready: keelReady}
	}
	return initrd, sqfs, nil
}

// buildBaseline runs the baseline's build.sh with containerd, ctr and the
// shim from the cache's containerd build (mkimages -only bench-tools) and
// runc from its runc build.
func (b *bench) buildBaseline(ctx context.Context) (*system, error) {
	dir := filepath.Join(b.work, "baseline")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(b.cache, "tools", "containerd-"+b.versions["CONTAINERD_VERSION"])
	runc := filepath.Join(b.cache, "tools", "runc-"+b.versions["RUNC_VERSION"], "runc")
	for _, p := range []string{filepath.Join(bin, "containerd"), filepath.Join(bin, "ctr"), filepath.Join(bin, "containerd-shim-runc-v2"), runc} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w (run go run ./tools/mkimages -only bench-tools, as make bench-boot does)", err)
		}
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(b.baselineDir, "build.sh"), bin, runc)
	cmd.Env = append(os.Environ(), "BASELINE_WORK="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build.sh: %v\n%s", err, out)
	}
	// The unpacked tree is only needed to make the initrd.
	if err := os.RemoveAll(filepath.Join(dir, "root")); err != nil {
		return nil, err
	}
	return &system{kind: baselineKind{}, initrd: filepath.Join(dir, "initrd.gz"), append: baselineAppend, ready: baselineReady}, nil
}

// boot boots s with mem MB. With full, it waits for the power-off and
// QEMU's exit (keel is told to power off on its console once ready);
// otherwise QEMU is killed once the services run. A boot that does not
// get there is returned with its marks missing (an error only with full).
func (b *bench) boot(ctx context.Context, s *system, mem int, full bool) (*boot, error) {
	b.bootNo++
	args := append([]string(nil), qemuArgs...)
	for i, a := range args {
		if a == "-m" {
			args[i+1] = fmt.Sprint(mem)
		}
	}
	args = append(args, "-kernel", b.kernel, "-initrd", s.initrd, "-append", s.append)
	if s.disk != "" {
		args = append(args, "-drive", "file="+s.disk+",if=virtio,format=raw,readonly=on")
	}
	bctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(bctx, "qemu-system-x86_64", args...)
	// QEMU dies with this process, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout

	logName := fmt.Sprintf("boot%02d-%s-m%d.log", b.bootNo, s.kind.name(), mem)
	var console bytes.Buffer
	fmt.Fprintf(&console, "qemu-system-x86_64 %s\n", strings.Join(args, " "))

	bt := newBoot()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	shell, typed := false, false
	for sc.Scan() {
		t := time.Since(start)
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(&console, "%8.3f | %s\n", t.Seconds(), line)
		s.kind.feed(bt, t, line)
		if !full {
			// Killed once it is clear: ready, or no services to come (the
			// kernel could not unpack the whole initramfs).
			if s.ready(line) || hopeless(line) {
				cmd.Process.Kill()
			}
			continue
		}
		if _, ok := s.kind.(keelKind); ok && !typed {
			shell = shell || keelShell(line)
			if shell && bt.hostReady >= 0 {
				typed = true
				io.WriteString(stdin, keelTyped)
			}
		}
	}
	werr := cmd.Wait()
	bt.hostExit = time.Since(start)
	bt.exited = true
	fmt.Fprintf(&console, "%8.3f | <qemu exit: %v>\n", bt.hostExit.Seconds(), werr)
	if b.logs != "" {
		os.WriteFile(filepath.Join(b.logs, logName), console.Bytes(), 0o644)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if full {
		if bctx.Err() != nil {
			return nil, fmt.Errorf("%s boot did not end within %s; console:\n%s", s.kind.name(), b.timeout, tail(console.Bytes()))
		}
		if bt.hostReady < 0 || bt.hostPoweroff < 0 {
			return nil, fmt.Errorf("%s boot ended (%v) before its services ran and it powered off; console:\n%s", s.kind.name(), werr, tail(console.Bytes()))
		}
	}
	return bt, nil
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// bisectMem finds the smallest -m, in 16 MB steps from memLo up to 1024,
// that boots s to services running, assuming more memory never hurts.
// Each try gets 3 times the median host time to ready at 1024 MB (at
// least a minute).
func (b *bench) bisectMem(ctx context.Context, s *system) (string, int, error) {
	var hs []float64
	for _, bt := range s.boots {
		hs = append(hs, hostSec(bt.hostReady))
	}
	med, _ := median(hs)
	saved := b.timeout
	defer func() { b.timeout = saved }()
	b.timeout = max(time.Minute, time.Duration(3*med*float64(time.Second)))
	if math.IsNaN(med) {
		b.timeout = saved
	}
	tries := 0
	ok := func(m int) (bool, error) {
		tries++
		bt, err := b.boot(ctx, s, m, false)
		if err != nil {
			return false, err
		}
		fmt.Printf("    %-8s -m %4d: %s\n", s.kind.name(), m, map[bool]string{true: "services running", false: "no"}[bt.hostReady >= 0])
		return bt.hostReady >= 0, nil
	}
	lo := (b.memLo + 15) / 16 * 16 // fails, or is the answer
	hi := 1024                     // boots (the timed boots did)
	good, err := ok(lo)
	if err != nil || good {
		return fmt.Sprintf("<= %d MB", lo), tries, err
	}
	for hi-lo > 16 {
		mid := (lo + hi) / 2 / 16 * 16
		good, err := ok(mid)
		if err != nil {
			return "", tries, err
		}
		if good {
			hi = mid
		} else {
			lo = mid
		}
	}
	return fmt.Sprintf("%d MB", hi), tries, nil
}

// initrdSize is the size of the initrd file, or of what it decompresses
// to (every gzip member or zstd frame: keel's initrd is one per segment).
func initrdSize(path string, compressed bool) (int64, error) {
	if compressed {
		fi, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	var z io.Reader
	if bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		zr, err := zstd.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		z = zr
	} else if z, err = gzip.NewReader(br); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(io.Discard, z)
	if err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func readVersions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if k, val, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			v[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	for _, k := range []string{"KERNEL_ABI", "KEEL_VERSION", "BUSYBOX_TAG", "CONTAINERD_VERSION", "RUNC_VERSION", "CRUN_VERSION"} {
		if v[k] == "" {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return v, nil
}
