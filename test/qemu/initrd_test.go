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
// person running it would see. Then the same image at the memory PID 1
// said boots whole.
func TestInitrdTooBigForMemoryFailsTheRun(t *testing.T) {
	requireBoot(t)
	prefix := buildExample(t, filepath.Join(repoRoot, "examples/demo.yml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	// 192 MiB: the kernel and part of the initrd fit, the rest does not
	// (the rootfs tmpfs the kernel unpacks into holds half of the memory;
	// the demo's initrd unpacks to about 65 MB).
	cmd := exec.CommandContext(ctx, keelBin, "run", "-mem", "192", "-append", "keel.oneshot", prefix)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := out.String()
	if err == nil {
		t.Fatalf("keel run exited 0 with a partly unpacked initrd:\n%s", console)
	}
	if !strings.Contains(console, "Initramfs unpacking failed") {
		t.Fatalf("the kernel unpacked the whole initrd at -m 192 (the test needs a size it does not fit in):\n%s", console)
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
	for _, never := range []string{"keel: onboot", "containerd", "console shell started", "services started"} {
		if strings.Contains(console, never) {
			t.Errorf("%q: something of the partial system ran:\n%s", never, console)
		}
	}
	m := regexp.MustCompile(`boot failed: .* needs=(\d+)MB mem=192MB unpacked=(\d+)MB .*hint="keel run -mem (\d+)"`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no needs=...MB mem=192MB unpacked=...MB ... hint in:\n%s", console)
	}
	needs, _ := strconv.Atoi(m[1])
	if needs <= 192 || m[3] != m[1] {
		t.Fatalf("needs=%sMB, hint -mem %s: want one figure above 192", m[1], m[3])
	}
	t.Logf("at -m 192 PID 1 says: needs=%dMB unpacked=%sMB", needs, m[2])

	// The figure is enough: the whole system starts and powers off.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd = exec.CommandContext(ctx, keelBin, "run", "-mem", strconv.Itoa(needs), "-append", "keel.oneshot", prefix)
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	console = out.String()
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
