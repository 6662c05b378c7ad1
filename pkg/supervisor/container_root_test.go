package supervisor

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
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
	// Stopped once the container runs its own program, not while it is
	// still libcontainer's init (a Go program, which SIGTERM ends with exit
	// 2): a fixed 300 ms fell there once on a loaded machine.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &cancelOn{word: "ready", cancel: cancel}
	var stderr bytes.Buffer
	code, err := runContainer(ctx, runner, "test-killed", linuxkitSpec("/bin/sh", "-c", "echo ready; exec sleep 60"), rootfs, stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	// sleep, PID 1 of its pid namespace, ignores SIGTERM: the grace
	// period passes and SIGKILL ends it.
	if exitString(code) != "signal:SIGKILL" {
		t.Errorf("exit = %v, want signal:SIGKILL", exitString(code))
	}
}

// cancelOn calls cancel once word has been written to it.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	word   string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.word) {
		w.cancel()
	}
	return len(b), nil
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
