package supervisor

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startReaper runs a real reaper for the test, with the test process made a
// child subreaper so that orphans come back to it as they would to PID 1.
func startReaper(t testing.TB) *Reaper {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become child subreaper: %v", err)
	}
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReaper(nil)
	done := make(chan struct{})
	go func() { r.Run(ctx, sigchld); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		signal.Stop(sigchld)
	})
	return r
}

func TestContainerExitCodeAndOutput(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	runner := &ContainerRunner{Reaper: startReaper(t), StateDir: filepath.Join(dir, "state")}

	for _, tc := range []struct {
		name   string
		script string
		code   int
		stdout string
		stderr string
	}{
		{"exit0", "echo hello from one; echo two; echo oops >&2", 0, "hello from one\ntwo\n", "oops\n"},
		{"exit3", "echo bye; exit 3", 3, "bye\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			spec := linuxkitSpec("/bin/sh", "-c", tc.script)
			exit, err := runner.Run(context.Background(), "test-"+tc.name, spec, rootfs, &stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if exit.Code() != tc.code || exit.String() != string(rune('0'+tc.code)) {
				t.Errorf("exit = %v, want %d", exit, tc.code)
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tc.stdout)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tc.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "state", "test-"+tc.name)); !os.IsNotExist(err) {
				t.Errorf("container state left behind: %v", err)
			}
		})
	}
}

func TestContainerKilledBySignal(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	runner := &ContainerRunner{Reaper: startReaper(t), StateDir: filepath.Join(dir, "state")}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	exit, err := runner.Run(ctx, "test-killed", linuxkitSpec("/bin/sleep", "60"), rootfs, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if exit.String() != "signal:SIGKILL" {
		t.Errorf("exit = %v, want signal:SIGKILL", exit)
	}
}
