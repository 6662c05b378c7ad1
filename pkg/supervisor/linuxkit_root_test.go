package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
)

// A bundle written the way `linuxkit build` writes one — its config.json and
// runtime.json, nulls, absolute runtime paths, a read-only rootfs with a bind
// to the host and LinuxKit's default masks — runs unchanged.
func TestLinuxKitBundleRuns(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	host := filepath.Join(root, "host")
	if err := os.MkdirAll(host, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, bundle.OnbootDir, "000-linuxkit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	busyboxRootfs(t, dir)
	// The image's mount point for the bind, as LinuxKit's images carry it.
	if err := os.MkdirAll(filepath.Join(dir, "rootfs/host"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bundle.ConfigFile, bundle.RuntimeFile} {
		b, err := os.ReadFile(filepath.Join("testdata/linuxkit-bundle", f))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "@HOST@", host))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
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
	o := &Onboot{
		Engine:   &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(root, "run/state")},
		Preparer: &Preparer{Mounts: &mounts},
		Console:  console,
		Log:      slog.New(console.Handler(slog.LevelInfo)),
		LogDir:   filepath.Join(root, "var/log"),
	}
	results := o.RunAll(context.Background(), bundles)
	o.Console.Flush(time.Minute)
	if len(results) != 1 || results[0].Failed() {
		t.Fatalf("LinuxKit bundle failed: %+v\nconsole:\n%s", results, out.String())
	}
	for _, want := range []string{"000-linuxkit: linuxkit bundle ran", "000-linuxkit: /host/made"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(host, "made")); err != nil {
		t.Errorf("runtime.json mkdir: %v", err)
	}
}
