package mount

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates device nodes and files owned by others")
	}
}

func TestMoveTree(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/deep/er"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "locked"), 0o755))
	must(os.MkdirAll(dst, 0o755))
	must(os.WriteFile(filepath.Join(src, "etc/deep/er/file"), []byte("deep"), 0o644))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("#!/bin/sh\n"), 0o644))
	must(os.Chown(filepath.Join(src, "suid"), 1000, 1001))
	must(unix.Chmod(filepath.Join(src, "suid"), 0o4755))
	// Three names for one inode, spread over directories.
	must(os.WriteFile(filepath.Join(src, "a"), []byte("linked"), 0o600))
	must(os.Link(filepath.Join(src, "a"), filepath.Join(src, "etc/b")))
	must(os.Link(filepath.Join(src, "a"), filepath.Join(src, "etc/deep/c")))
	must(os.Symlink("../nowhere", filepath.Join(src, "etc/dangling")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Chmod(filepath.Join(src, "fifo"), 0o620)) // past the umask
	must(unix.Chmod(filepath.Join(src, "null"), 0o666))
	must(os.WriteFile(filepath.Join(src, "locked/inside"), []byte("x"), 0o400))
	must(os.Chmod(filepath.Join(src, "locked"), 0o500)) // no write bit on a directory with content
	xattrOK := unix.Lsetxattr(filepath.Join(src, "a"), "user.keel", []byte("kept"), 0) == nil
	mtime := unix.NsecToTimespec(1_000_000_000_123_456_789)
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, "etc/deep/er/file"), []unix.Timespec{mtime, mtime}, 0))
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, "etc/dangling"), []unix.Timespec{mtime, mtime}, unix.AT_SYMLINK_NOFOLLOW))

	must(MoveTree(src, dst))

	left, err := os.ReadDir(src)
	must(err)
	if len(left) != 0 {
		t.Errorf("source not emptied: %v", left)
	}
	stat := func(p string) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(dst, p), &st))
		return &st
	}
	if st := stat("suid"); st.Mode != unix.S_IFREG|0o4755 || st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("suid: mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
	}
	a, b, c := stat("a"), stat("etc/b"), stat("etc/deep/c")
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("hardlinks broken: inodes %d %d %d, nlink %d", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	if target, err := os.Readlink(filepath.Join(dst, "etc/dangling")); err != nil || target != "../nowhere" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if st := stat("etc/dangling"); st.Mtim != mtime {
		t.Errorf("symlink mtime %v, want %v", st.Mtim, mtime)
	}
	if st := stat("etc/deep/er/file"); st.Mtim != mtime {
		t.Errorf("file mtime %v, want %v", st.Mtim, mtime)
	}
	if st := stat("fifo"); st.Mode != unix.S_IFIFO|0o620 {
		t.Errorf("fifo mode %o", st.Mode)
	}
	if st := stat("null"); st.Mode != unix.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node: mode %o rdev %d", st.Mode, st.Rdev)
	}
	if st := stat("locked"); st.Mode != unix.S_IFDIR|0o500 {
		t.Errorf("locked dir mode %o", st.Mode)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "etc/deep/er/file")); err != nil || string(data) != "deep" {
		t.Errorf("content: %q, %v", data, err)
	}
	if xattrOK {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(dst, "a"), "user.keel", buf)
		if err != nil || string(buf[:n]) != "kept" {
			t.Errorf("xattr: %q, %v", buf[:n], err)
		}
	}
}

// A mount point inside the tree becomes an empty directory, and the
// destination, when it lies inside the source, is not moved into itself.
func TestMoveTreeSkipsMountsAndDestination(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	dst := filepath.Join(src, "newroot")
	for _, d := range []string{"proc", "newroot", "bin"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "bin/tool"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(src, "proc"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(src, "proc"), unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(src, "proc/other-fs"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := MoveTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "bin/tool")); err != nil {
		t.Error(err)
	}
	if entries, err := os.ReadDir(filepath.Join(dst, "proc")); err != nil || len(entries) != 0 {
		t.Errorf("mount point copied with contents: %v, %v", entries, err)
	}
	if _, err := os.Stat(filepath.Join(src, "proc/other-fs")); err != nil {
		t.Errorf("file on another filesystem was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "newroot")); !os.IsNotExist(err) {
		t.Errorf("destination moved into itself: %v", err)
	}
}

func TestBindSelfReadOnly(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var tab Table
	if err := tab.BindSelf(dir, true); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if uerr := tab.UnmountAll(Syscalls{}); uerr != nil {
		t.Fatal(uerr)
	}
	if err == nil {
		t.Fatal("wrote into a read-only bind mount")
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatalf("still read-only after unmounting: %v", err)
	}
}
