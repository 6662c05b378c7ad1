package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
)

// writeOverlayBundle writes an onboot bundle as `keel build` does for a
// writable bundle of a shared image: an empty rootfs and a runtime.json
// naming the image as rootfsLower.
func writeOverlayBundle(t *testing.T, root string, index int, name, lower, script string) {
	t.Helper()
	dir := filepath.Join(root, bundle.OnbootDir, bundle.DirName(bundle.Onboot, index, name))
	if err := os.MkdirAll(filepath.Join(dir, bundle.RootfsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := linuxkitSpec("/bin/sh", "-c", script)
	spec.Root.Readonly = false
	cfg, err := bundle.MarshalConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := bundle.MarshalRuntime(&bundle.Runtime{RootfsLower: lower})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.RuntimeFile), rt, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Two writable bundles over one shared image: each writes, deletes and
// changes files, and neither sees the other's changes, nor does the image.
func TestSharedRootfsOverlaysKeepWritesApart(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	lower := busyboxRootfs(t, filepath.Join(root, bundle.ImagePath("0123abcd")))
	if err := os.WriteFile(filepath.Join(lower, "etc/shared"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lower, 0o751); err != nil {
		t.Fatal(err)
	}
	// Each checks that it sees the image untouched, then changes it; any
	// failed check is a non-zero exit.
	const script = `set -e
[ ! -e /etc/mine ]
[ "$(cat /etc/shared)" = image ]
[ -e /bin/ls ]
[ "$(/bin/busybox stat -c %a /)" = 751 ]
echo NAME > /etc/mine
echo NAME > /etc/shared
rm /bin/ls
mkdir /new
echo ok`
	writeOverlayBundle(t, root, 0, "a", lower, strings.ReplaceAll(script, "NAME", "a"))
	writeOverlayBundle(t, root, 1, "b", lower, strings.ReplaceAll(script, "NAME", "b"))
	writeOverlayBundle(t, root, 2, "missing", filepath.Join(root, "no-such-image"), "true")
	bundles, err := bundle.List(root, bundle.Onboot)
	if err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	console := bootlog.New(&out)
	var mounts mount.Table
	unmounted := false
	unmountAll := func() {
		if !unmounted {
			unmounted = true
			if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(unmountAll)
	overlays := filepath.Join(root, "run/overlay")
	o := &Onboot{
		Engine:   &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(root, "run/state")},
		Preparer: &Preparer{Mounts: &mounts, OverlayDir: overlays},
		Console:  console,
		Log:      slog.New(console.Handler(slog.LevelInfo)),
		LogDir:   filepath.Join(root, "var/log"),
	}
	results := o.RunAll(context.Background(), bundles)
	o.Console.Flush(time.Minute)
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for _, r := range results[:2] {
		if r.Failed() {
			t.Errorf("%s: %+v; console:\n%s", r.Bundle.Name, r, out.String())
		}
	}
	if r := results[2]; r.Err == nil || !strings.Contains(r.Err.Error(), "rootfsLower") || !strings.Contains(r.Err.Error(), "no-such-image") {
		t.Errorf("a missing lower directory: %v, want an error naming rootfsLower and the path", r.Err)
	}

	// Each bundle's writes are in its own layer, and only there.
	for i, name := range []string{"a", "b"} {
		rootfs := filepath.Join(root, bundle.OnbootDir, bundle.DirName(bundle.Onboot, i, name), bundle.RootfsDir)
		for _, f := range []string{"etc/mine", "etc/shared"} {
			if b, err := os.ReadFile(filepath.Join(rootfs, f)); err != nil || string(b) != name+"\n" {
				t.Errorf("%s: %s is %q (%v), want its own write", name, f, b, err)
			}
		}
		if _, err := os.Stat(filepath.Join(rootfs, "bin/ls")); !os.IsNotExist(err) {
			t.Errorf("%s: bin/ls was deleted but is there: %v", name, err)
		}
	}
	// The image is as it was.
	if b, err := os.ReadFile(filepath.Join(lower, "etc/shared")); err != nil || string(b) != "image\n" {
		t.Errorf("the image's etc/shared became %q (%v)", b, err)
	}
	for _, p := range []string{"etc/mine", "new"} {
		if _, err := os.Stat(filepath.Join(lower, p)); !os.IsNotExist(err) {
			t.Errorf("a write reached the image: %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(lower, "bin/ls")); err != nil {
		t.Errorf("a delete reached the image: %v", err)
	}

	// Shutdown's unmount takes the overlays and their layers away.
	unmountAll()
	for _, p := range []string{
		filepath.Join(root, bundle.OnbootDir, "000-a", bundle.RootfsDir),
		filepath.Join(overlays, "onboot-000-a"),
	} {
		if isMountPoint(t, p) {
			t.Errorf("%s still mounted after UnmountAll", p)
		}
	}
}

// isMountPoint reports whether p is on another filesystem than its parent.
func isMountPoint(t *testing.T, p string) bool {
	t.Helper()
	var st, parent unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Dir(p), &parent); err != nil {
		t.Fatal(err)
	}
	return st.Dev != parent.Dev
}

// A service's rootfs overlay is made in prepare, before runtime.json's
// mkdir, so that what mkdir makes is in the container's view (the
// writable layer), not hidden under the overlay or written to the image.
func TestServicePrepareMountsSharedRootfsFirst(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	lower := filepath.Join(root, bundle.ImagePath("0123abcd"))
	if err := os.MkdirAll(filepath.Join(lower, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, bundle.ServicesDir, "svc")
	if err := os.MkdirAll(filepath.Join(dir, bundle.RootfsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := linuxkitSpec("/bin/true")
	spec.Root.Readonly = false
	cfg, err := bundle.MarshalConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := bundle.MarshalRuntime(&bundle.Runtime{RootfsLower: lower, Mkdir: []string{"rootfs/etc/made"}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, bundle.ConfigFile), cfg, 0o644)
	os.WriteFile(filepath.Join(dir, bundle.RuntimeFile), rt, 0o644)

	var mounts mount.Table
	t.Cleanup(func() {
		if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
			t.Error(err)
		}
	})
	p := &Preparer{Mounts: &mounts, OverlayDir: filepath.Join(root, "run/overlay")}
	b := bundle.Bundle{Kind: bundle.Service, Name: "svc", Path: dir}
	got, err := p.Prepare(b)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, bundle.RootfsDir)
	if got.Spec.Root.Path != rootfs || got.Rootfs != rootfs {
		t.Errorf("spec root %q (%q), want %q", got.Spec.Root.Path, got.Rootfs, rootfs)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(rootfs, &fs); err != nil || fs.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Errorf("rootfs is not an overlay: type %#x, %v", fs.Type, err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/made")); err != nil {
		t.Errorf("runtime.json's mkdir is not in the container's view: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lower, "etc/made")); !os.IsNotExist(err) {
		t.Errorf("runtime.json's mkdir reached the image: %v", err)
	}
}
