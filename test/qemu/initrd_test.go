package qemu_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The demo image in a VM too small to hold its unpacked initrd: the kernel
// unpacks part of it and boots on. PID 1 must notice, say what is missing
// and the memory the VM needs, run nothing, and `keel run` must fail, as a
// person running it would see. In a VM too small even for PID 1, the
// kernel must find nothing to run and keel run must say why. Then the same
// image at the memory PID 1 said boots whole.
func TestInitrdTooBigForMemoryFailsTheRun(t *testing.T) {
	requireBoot(t)
	prefix := buildExample(t, filepath.Join(repoRoot, "examples/demo.yml"))
	// 128 MiB: the kernel, PID 1 (the initrd's first file) and part of
	// the rest fit; the rest does not (the rootfs tmpfs the kernel
	// unpacks into holds half of the memory left beside the kernel and
	// the compressed initrd; the demo's initrd unpacks to about 45 MB).
	const small = 128
	console, err := keelRun(t, prefix, small)
	if err == nil {
		t.Fatalf("keel run exited 0 with a partly unpacked initrd:\n%s", console)
	}
	if !strings.Contains(console, "Initramfs unpacking failed") {
		t.Fatalf("the kernel unpacked the whole initrd at -m %d (the test needs a size it does not fit in):\n%s", small, console)
	}
	for _, want := range []string{
		"keel: ERROR initrd incomplete: the kernel did not unpack all of it missing=",
		"keel: ERROR boot failed: the initrd did not fit in this VM's memory; nothing is run needs=",
		"reboot: System halted",
		"keel: run: the guest's boot failed: the initrd did not fit",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("no %q in:\n%s", want, console)
		}
	}
	noPartialSystem(t, console)
	m := regexp.MustCompile(`boot failed: .* needs=(\d+)MB mem=` + strconv.Itoa(small) + `MB unpacked=(\d+)MB .*hint="keel run -mem (\d+)"`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no needs=...MB mem=%dMB unpacked=...MB ... hint in:\n%s", small, console)
	}
	needs, _ := strconv.Atoi(m[1])
	if needs <= small || m[3] != m[1] {
		t.Fatalf("needs=%sMB, hint -mem %s: want one figure above %d", m[1], m[3], small)
	}
	t.Logf("at -m %d PID 1 says: needs=%dMB unpacked=%sMB", small, needs, m[2])

	// 112 MiB: not even PID 1 fits. The kernel finds no init (nothing
	// of the partial system comes before /init to run instead) and
	// panics; keel run says the initrd did not fit.
	const tiny = 112
	console, err = keelRun(t, prefix, tiny)
	if !strings.Contains(console, "Failed to execute /init") {
		t.Fatalf("at -m %d /init was unpacked whole (the test needs a size it does not fit in):\n%s", tiny, console)
	}
	if err == nil || !strings.Contains(console, "keel: run: the guest's boot failed: the initrd did not fit in this VM's memory, not even PID 1") {
		t.Errorf("keel run -mem %d: %v, want it to fail saying the initrd did not fit:\n%s", tiny, err, console)
	}
	noPartialSystem(t, console)

	// The figure is enough: the whole system starts and powers off.
	console, err = keelRun(t, prefix, needs)
	if err != nil {
		t.Fatalf("keel run -mem %d: %v:\n%s", needs, err, console)
	}
	for _, never := range []string{"Initramfs unpacking failed", "initrd incomplete", "boot failed"} {
		if strings.Contains(console, never) {
			t.Errorf("%q at -mem %d:\n%s", never, needs, console)
		}
	}
	if !strings.Contains(console, "services started") {
		t.Errorf("no \"services started\" at -mem %d:\n%s", needs, console)
	}
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "Memory:") || strings.Contains(l, "Freeing initrd memory") || strings.Contains(l, "services started") {
			t.Logf("at -mem %d: %s", needs, strings.TrimSpace(l))
		}
	}
}

// keelRun boots the image at prefix with -mem mem and keel.oneshot, and
// returns its whole output and keel run's error.
func keelRun(t *testing.T, prefix string, mem int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBin, "run", "-mem", strconv.Itoa(mem), "-append", "keel.oneshot", prefix)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("keel run -mem %d did not end:\n%s", mem, out.String())
	}
	return out.String(), err
}

// noPartialSystem fails t if the console shows anything of the system
// running (a shell the kernel fell back to included).
func noPartialSystem(t *testing.T, console string) {
	t.Helper()
	for _, never := range []string{"keel: onboot", "containerd", "console shell started", "services started", "BusyBox"} {
		if strings.Contains(console, never) {
			t.Errorf("%q: something of the partial system ran:\n%s", never, console)
		}
	}
}
