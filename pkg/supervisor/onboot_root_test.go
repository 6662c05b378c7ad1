package supervisor

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// syncBuffer is a bytes.Buffer safe for the console's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeBundle(t *testing.T, root string, index int, name string, args ...string) {
	t.Helper()
	dir := filepath.Join(root, bundle.OnbootDir, bundle.DirName(bundle.Onboot, index, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	busyboxRootfs(t, dir)
	b, err := bundle.MarshalConfig(linuxkitSpec(args...))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOnbootRunsInOrderAndLogs(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	writeBundle(t, root, 0, "hello", "/bin/sh", "-c", "echo hello from one; echo on stderr >&2")
	writeBundle(t, root, 1, "fail", "/bin/sh", "-c", "echo about to fail; exit 3")
	writeBundle(t, root, 2, "missing", "/bin/does-not-exist")
	writeBundle(t, root, 3, "last", "/bin/sh", "-c", "printf 'no newline'")
	// runtime.json, with paths relative to the bundle: a directory to make
	// and a read-only bind mount into the rootfs.
	writeBundle(t, root, 4, "runtime", "/bin/sh", "-c", "cat /etc/marker; ls /etc; touch /etc/x || echo read-only")
	runtimeBundle := filepath.Join(root, bundle.OnbootDir, "004-runtime")
	if err := os.MkdirAll(filepath.Join(runtimeBundle, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runtimeBundle, "data/marker"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := bundle.MarshalRuntime(&bundle.Runtime{
		Mkdir:  []string{"data/made"},
		Mounts: []specs.Mount{{Source: "data", Destination: "rootfs/etc", Type: "bind", Options: []string{"rbind", "ro"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runtimeBundle, bundle.RuntimeFile), rt, 0o644); err != nil {
		t.Fatal(err)
	}
	bundles, err := bundle.List(root, bundle.Onboot)
	if err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	console := bootlog.New(&out)
	var mounts mount.Table
	t.Cleanup(func() {
		if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
			t.Error(err)
		}
	})
	logDir := filepath.Join(root, "var/log")
	o := &Onboot{
		Engine:   &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(root, "run/state")},
		Preparer: &Preparer{Mounts: &mounts},
		Console:  console,
		Log:      slog.New(console.Handler(slog.LevelInfo)),
		LogDir:   logDir,
	}
	results := o.RunAll(context.Background(), bundles)
	o.Console.Flush(time.Minute)
	if len(results) != 5 {
		t.Fatalf("%d results, want 5", len(results))
	}
	if results[0].Failed() || !results[1].Failed() || !results[2].Failed() || results[3].Failed() || results[4].Failed() {
		t.Errorf("failures wrong: %+v", results)
	}

	stamp := `\[ *\d+\.\d{6}\] `
	want := []string{
		stamp + `000-hello: hello from one$`,
		stamp + `keel: onboot 000-hello exit=0 duration=\d+ms$`,
		stamp + `001-fail: about to fail$`,
		stamp + `keel: WARN onboot 001-fail exit=3 duration=\d+ms$`,
		stamp + `keel: (ERROR onboot 002-missing failed err=.*|WARN onboot 002-missing exit=\d+ duration=\d+ms)$`,
		stamp + `003-last: no newline$`,
		stamp + `keel: onboot 003-last exit=0 duration=\d+ms$`,
		stamp + `004-runtime: from the host$`,
		stamp + `004-runtime: made$`,
		stamp + `004-runtime: marker$`,
		stamp + `keel: onboot 004-runtime exit=0 duration=\d+ms$`,
		stamp + `keel: WARN onboot done count=5 failed=2$`,
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	i := 0
	for _, l := range lines {
		if i < len(want) && regexp.MustCompile(want[i]).MatchString(l) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("console lacks %q (in order); got:\n%s", want[i], out.String())
	}
	// stdout and stderr are two pipes: their relative order is not kept.
	if !regexp.MustCompile(`(?m)^` + stamp + `000-hello: on stderr$`).MatchString(out.String()) {
		t.Errorf("console lacks the stderr line; got:\n%s", out.String())
	}
	if !regexp.MustCompile(`(?m)^` + stamp + `004-runtime: read-only$`).MatchString(out.String()) {
		t.Errorf("runtime.json's ro bind mount was writable; got:\n%s", out.String())
	}

	log, err := os.ReadFile(filepath.Join(logDir, "onboot.000-hello.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(log); got != "hello from one\non stderr\n" && got != "on stderr\nhello from one\n" {
		t.Errorf("onboot.000-hello.log = %q", got)
	}
}
