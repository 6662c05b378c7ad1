package qemu_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const detachedYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
services:
  - name: ticker
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "echo ticker up; trap 'exit 0' TERM; while true; do sleep 1; done"]
`

// keel run --detached boots in the background, with the console in the
// state directory and the disks it was asked for created (one there); keel
// run --stop NAME presses the power button over QMP and returns once QEMU
// is gone, after keel's orderly shutdown.
func TestRunDetachedStop(t *testing.T) {
	requireBoot(t)
	prefix := buildImage(t, "detached", detachedYAML)
	// By one of its files; the state directory is NAME-state.
	state := prefix + "-state"
	qcow := filepath.Join(t.TempDir(), "data.qcow2")
	args := []string{"run", prefix + "-kernel", "--detached", "--mem", "1G",
		"--disk", "size=64M", "--disk", "file=" + qcow + ",size=128M"}
	out, err := exec.Command(keelBin, args...).CombinedOutput()
	t.Logf("keel %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("keel run --detached: %v", err)
	}
	// Whatever happens next, no VM outlives the test.
	pid := 0
	if b, err := os.ReadFile(filepath.Join(state, "qemu.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid <= 0 {
		t.Fatalf("no pid in %s/qemu.pid", state)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if st, err := os.Stat(filepath.Join(state, "disk0.img")); err != nil || st.Size() != 64<<20 {
		t.Errorf("raw disk in the state directory: %v %v", st, err)
	}
	if b, err := os.ReadFile(qcow); err != nil || !strings.HasPrefix(string(b), "QFI\xfb") {
		t.Errorf("qcow2 disk %s: %v", qcow, err)
	}

	console := filepath.Join(state, "console.log")
	waitFor(t, console, "keel: service ticker running", 3*time.Minute)
	stop := exec.Command(keelBin, "run", "--stop", prefix)
	out, err = stop.CombinedOutput()
	t.Logf("keel run --stop:\n%s", out)
	if err != nil || !strings.Contains(string(out), "the guest powered off") {
		t.Fatalf("keel run --stop: %v", err)
	}
	log, _ := os.ReadFile(console)
	for _, want := range []string{"keel: power button pressed", "keel: service ticker stopped exit=0", "reboot: Power down"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("console log has no %q:\n%s", want, log)
		}
	}
}

// waitFor waits until file holds want; the deadline only bounds a failure.
func waitFor(t *testing.T, file, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v:\n%s", file, want, within, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
