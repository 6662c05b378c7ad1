package qemu_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The demo image in a VM too small to hold its unpacked initrd: the kernel
// unpacks part of it and boots on. PID 1 must notice, say what is missing
// and what memory there is, run nothing, and `keel run` must fail, as a
// person running it would see.
func TestInitrdTooBigForMemoryFailsTheRun(t *testing.T) {
	requireBoot(t)
	prefix := buildExample(t, filepath.Join(repoRoot, "examples/demo.yml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	// 192 MiB: the kernel and part of the initrd fit, the rest does not
	// (the rootfs tmpfs the kernel unpacks into holds half of the memory;
	// at 256 the demo's initrd, 75 MB unpacked since containerd, ctr and
	// the shim are one binary, fits).
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
		"keel: ERROR boot failed: the initrd did not fit in this VM's memory; nothing is run mem=",
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
}
