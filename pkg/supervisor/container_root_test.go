package supervisor

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	runner := &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(dir, "state")}

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
			code, err := runContainer(context.Background(), runner, "test-"+tc.name, spec, rootfs, &stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit = %v, want %d", code, tc.code)
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
	runner := &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(dir, "state")}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code, err := runContainer(ctx, runner, "test-killed", linuxkitSpec("/bin/sleep", "60"), rootfs, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	// sleep, PID 1 of its pid namespace, ignores SIGTERM: the grace
	// period passes and SIGKILL ends it.
	if exitString(code) != "signal:SIGKILL" {
		t.Errorf("exit = %v, want signal:SIGKILL", exitString(code))
	}
}

// runContainer runs spec once with rootfs as its root, through a Unit as
// onboot does, and returns its exit code; ending ctx stops it.
func runContainer(ctx context.Context, lc *Libcontainer, id string, spec *specs.Spec, rootfs string, stdout, stderr io.Writer) (int, error) {
	s := *spec
	root := *spec.Root
	root.Path = rootfs
	s.Root = &root
	p := &Prepared{Spec: &s, Runtime: &bundle.Runtime{}, Rootfs: rootfs}
	u := &Unit{Name: id, Runner: lc.Runner(id, p, stdout, stderr), Policy: Never, Grace: 100 * time.Millisecond, Quiet: true}
	out := u.Run(ctx)
	return out.Code, out.Err
}
