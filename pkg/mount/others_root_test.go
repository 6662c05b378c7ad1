package mount

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"

	"golang.org/x/sys/unix"
)

// Mounts PID 1 did not make, below one it did, are unmounted by
// UnmountOthers; its own are left to UnmountAll.
func TestUnmountOthersRoot(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var tab Table
	own := filepath.Join(dir, "own")
	disk := filepath.Join(own, "disk")
	other := filepath.Join(dir, "other")
	for _, d := range []string{own, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Mount("tmpfs", own, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(own, unix.MNT_DETACH) })
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{disk, other} {
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(d, unix.MNT_DETACH) })
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.UnmountOthers(Syscalls{}, mounts, dir); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{own: true, disk: false, other: false} {
		if got := mounted(t, d); got != want {
			t.Errorf("%s mounted = %v, want %v", d, got, want)
		}
	}
	if err := tab.UnmountAll(Syscalls{}); err != nil {
		t.Fatal(err)
	}
	if mounted(t, own) {
		t.Errorf("%s still mounted after UnmountAll", own)
	}
}

// mounted tells whether dir is a mount point, by its device differing from
// its parent's.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	var st, pst unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Dir(dir), &pst); err != nil {
		t.Fatal(err)
	}
	return st.Dev != pst.Dev
}
