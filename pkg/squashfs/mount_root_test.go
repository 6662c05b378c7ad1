package squashfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernelMountsIt mounts an image through the kernel (a loop device:
// root only), the reader that counts, and reads it back.
func TestKernelMountsIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: mounting through a loop device needs root")
	}
	img := writeImage(t, testEntries())
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, dir).CombinedOutput(); err != nil {
		t.Skipf("this kernel cannot mount squashfs from a loop device: %v\n%s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	if b, err := os.ReadFile(filepath.Join(dir, "bin/program")); err != nil || string(b) != program {
		t.Errorf("program (stored uncompressed): %d bytes, %v", len(b), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "home/user/big")); err != nil || string(b) != big {
		t.Errorf("big: %d bytes, %v", len(b), err)
	}
	st, err := os.Lstat(filepath.Join(dir, "bin/busybox"))
	if err != nil || st.Mode()&os.ModeSetuid == 0 {
		t.Errorf("bin/busybox: %v, %v: want setuid", st.Mode(), err)
	}
	sh, _ := os.Lstat(filepath.Join(dir, "bin/sh"))
	if !os.SameFile(st, sh) {
		t.Error("bin/sh is not the same inode as bin/busybox")
	}
	if target, err := os.Readlink(filepath.Join(dir, "abs")); err != nil || target != "/does/not/exist" {
		t.Errorf("abs -> %q, %v", target, err)
	}
	es, err := os.ReadDir(filepath.Join(dir, "many"))
	if err != nil || len(es) != 600 {
		t.Errorf("many/: %d entries, %v", len(es), err)
	}
	// Every name is found by lookup, which relies on the sorted order
	// and on each header's inode block.
	for _, e := range es {
		if _, err := os.Lstat(filepath.Join(dir, "many", e.Name())); err != nil {
			t.Errorf("lookup %s: %v", e.Name(), err)
		}
	}
	var dev unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "dev/sda3"), &dev); err != nil || unix.Major(dev.Rdev) != 259 || unix.Minor(dev.Rdev) != 3 {
		t.Errorf("dev/sda3: %d,%d, %v; want 259,3", unix.Major(dev.Rdev), unix.Minor(dev.Rdev), err)
	}
}
