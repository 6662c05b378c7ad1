package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel's initial root filesystem (the unpacked initramfs) can never
// be unmounted or moved, so pivot_root(2) refuses to run from it, and
// pivot_root is how libcontainer enters a container's root. PID 1 therefore
// moves the files into an ordinary tmpfs first and makes that the root.

// IsInitramfs reports whether / is the kernel's initial rootfs. That is a
// ramfs, or a tmpfs that mountinfo lists with filesystem type "rootfs"; a
// tmpfs keel mounted itself is listed as "tmpfs".
func IsInitramfs() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false, fmt.Errorf("statfs /: %w", err)
	}
	switch st.Type {
	case unix.RAMFS_MAGIC:
		return true, nil
	case unix.TMPFS_MAGIC:
		fstype, err := rootFSType()
		if err != nil {
			return false, err
		}
		return fstype == "rootfs", nil
	}
	return false, nil
}

// rootFSType is the filesystem type mountinfo gives for /. /proc may not be
// mounted yet this early; then it is mounted for the look and unmounted.
func rootFSType() (string, error) {
	const mountinfoPath = "/proc/self/mountinfo"
	if _, err := os.Stat(mountinfoPath); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll("/proc", 0o555); err != nil {
			return "", fmt.Errorf("create /proc: %w", err)
		}
		if err := unix.Mount("proc", "/proc", "proc", noSUIDDevExec, ""); err != nil {
			return "", fmt.Errorf("mount /proc to read mountinfo: %w", err)
		}
		defer unix.Unmount("/proc", unix.MNT_DETACH)
	}
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	return rootFSTypeFrom(bufio.NewScanner(f))
}

// rootFSTypeFrom finds the filesystem type of the mount on / that is
// visible (the last one listed for "/") in mountinfo lines:
//
//	1 1 0:2 / / rw - rootfs rootfs rw,size=...
func rootFSTypeFrom(s *bufio.Scanner) (string, error) {
	fstype := ""
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 || fields[4] != "/" {
			continue
		}
		for i := 5; i+1 < len(fields); i++ {
			if fields[i] == "-" {
				fstype = fields[i+1]
				break
			}
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if fstype == "" {
		return "", errors.New("read mountinfo: no mount on /")
	}
	return fstype, nil
}

// SwitchRoot moves the initramfs into a tmpfs mounted at newRoot and makes
// that tmpfs the root of this process. It must run before anything else has
// been mounted: other mounts are not carried over. The caller then
// re-executes itself, so that nothing keeps the old root alive.
//
// The tmpfs may grow to all of RAM, as the initramfs itself could: files are
// moved one at a time (copied, then the original deleted), so memory use
// never exceeds the image size plus one file.
func SwitchRoot(newRoot string) error {
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("switch root: create %s: %w", newRoot, err)
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755,size=100%"); err != nil {
		return fmt.Errorf("switch root: mount tmpfs on %s: %w", newRoot, err)
	}
	if err := MoveTree("/", newRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
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
