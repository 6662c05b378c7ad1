package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel's initial root filesystem (the unpacked initramfs) is a mount
// with no parent: it can never be unmounted or moved, and pivot_root(2)
// refuses to run while it is the root. pivot_root is how libcontainer (and
// runc) enter a container's root, so PID 1 first puts another mount on /.

// IsInitramfs reports whether / is the kernel's initial rootfs, the mount
// pivot_root cannot leave: in mountinfo, the mount on / is its own parent.
func IsInitramfs() (bool, error) {
	const mountinfoPath = "/proc/self/mountinfo"
	// /proc is not mounted yet this early; mount it for the look only.
	if _, err := os.Stat(mountinfoPath); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll("/proc", 0o555); err != nil {
			return false, fmt.Errorf("create /proc: %w", err)
		}
		if err := unix.Mount("proc", "/proc", "proc", noSUIDDevExec, ""); err != nil {
			return false, fmt.Errorf("mount /proc to read mountinfo: %w", err)
		}
		defer unix.Unmount("/proc", unix.MNT_DETACH)
	}
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	return rootIsOwnParent(bufio.NewScanner(f))
}

// rootIsOwnParent reads mountinfo lines ("ID PARENT MAJ:MIN ROOT MOUNTPOINT
// ...") and reports whether the visible mount on / (the last one listed)
// is its own parent, as only the kernel's initial rootfs is:
//
//	1 1 0:2 / / rw - rootfs rootfs rw
func rootIsOwnParent(s *bufio.Scanner) (bool, error) {
	found, own := false, false
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 || fields[4] != "/" {
			continue
		}
		found, own = true, fields[0] == fields[1]
	}
	if err := s.Err(); err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	if !found {
		return false, errors.New("read mountinfo: no mount on /")
	}
	return own, nil
}

// SwitchRoot makes a mount at newRoot that holds the initramfs's files the
// root of this process, so that pivot_root works from it. It must run before
// anything else has been mounted: other mounts are not carried over. The
// caller then re-executes itself, so that nothing refers to the old root.
//
// By default newRoot is a recursive bind mount of the initramfs itself:
// nothing is copied, which costs milliseconds whatever the image size
// (copying a 100 MB image took 4.9 s under QEMU TCG). With copyFiles set, the
// files are moved into a new tmpfs instead, one at a time (copied, then the
// original deleted, so memory use never exceeds the image plus one file);
// that root is an ordinary tmpfs, which can be resized or limited.
func SwitchRoot(newRoot string, copyFiles bool) error {
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("switch root: create %s: %w", newRoot, err)
	}
	if copyFiles {
		if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755,size=100%"); err != nil {
			return fmt.Errorf("switch root: mount tmpfs on %s: %w", newRoot, err)
		}
		if err := MoveTree("/", newRoot); err != nil {
			return fmt.Errorf("switch root: %w", err)
		}
	} else if err := unix.Mount("/", newRoot, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("switch root: bind / on %s: %w", newRoot, err)
	}
	return MoveRoot(newRoot)
}

// StagingRoot is where the mount that replaces the initramfs as / is put
// together before MoveRoot (by SwitchRoot, or from a squashfs disk by
// pkg/squashfsroot).
const StagingRoot = "/.keel-root"

// MoveRoot makes the mount at newRoot the root of this process: it moves
// it onto / and enters it. What was / stays underneath, out of reach.
func MoveRoot(newRoot string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: chdir %s: %w", newRoot, err)
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: chdir /: %w", err)
	}
	return nil
}
