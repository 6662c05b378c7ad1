package mount

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The size option System gives /var, and the one the overlay layers get,
// are taken by the kernel: a tmpfs mounted with them is that big.
func TestTmpfsSizeMountedRoot(t *testing.T) {
	needRoot(t)
	mem, err := MemTotal()
	if err != nil {
		t.Fatal(err)
	}
	var varFS fs
	for _, f := range systemFilesystems {
		if f.target == "/var" {
			varFS = f
		}
	}
	for _, tc := range []struct {
		kind TmpfsKind
		data string
	}{
		{TmpfsVar, varFS.withSize(mem)},
		{TmpfsOverlay, "mode=0700," + TmpfsSizeOption(TmpfsOverlay)},
	} {
		dir := t.TempDir()
		var tab Table
		if err := tab.Mount("tmpfs", dir, "tmpfs", varFS.flags, tc.data); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		// tmpfs rounds the limit up to whole pages.
		page := uint64(unix.Getpagesize())
		want := (TmpfsSize(tc.kind, mem) + page - 1) / page * page
		if got := st.Blocks * uint64(st.Bsize); got != want {
			t.Errorf("%s tmpfs (%q) is %d bytes, want %d", tc.kind, tc.data, got, want)
		}
	}
}
