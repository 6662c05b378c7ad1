package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A kernel+squashfs system boots from a small initrd and keeps the system
// on a disk: PID 1 finds the partition by its GPT name, mounts its
// squashfs read-only, and makes an overlay of it with a tmpfs on top the
// new root, so that everything that writes to / (the containers'
// rootfs, /etc, ...) works as on the initramfs, and only what is written
// takes RAM.

// ErrNoPartition is returned when no partition of that name shows up.
var ErrNoPartition = errors.New("no such partition")

// FindPartition waits until the kernel lists a block device partition
// whose GPT name (PARTNAME in its uevent under sys/class/block) is name,
// and returns its device path under /dev. Disks probe in the background
// once their driver is loaded, so it looks again every 10 ms until
// timeout has passed.
func FindPartition(sys, name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		dev, err := lookPartition(sys, name)
		if err != nil || dev != "" {
			return dev, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("partition %q after %s: %w", name, timeout, ErrNoPartition)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lookPartition(sys, name string) (string, error) {
	dir := filepath.Join(sys, "class", "block")
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // no block device yet
	}
	if err != nil {
		return "", fmt.Errorf("find partition %q: %w", name, err)
	}
	for _, e := range es {
		vars, err := readUevent(filepath.Join(dir, e.Name(), "uevent"))
		if err != nil {
			continue // gone meanwhile, or not a device
		}
		if vars["PARTNAME"] == name && vars["DEVNAME"] != "" {
			return "/dev/" + vars["DEVNAME"], nil
		}
	}
	return "", nil
}

func readUevent(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			vars[k] = v
		}
	}
	return vars, s.Err()
}

// SquashfsOverlay mounts the squashfs on dev read-only at dir/lower, a
// tmpfs at dir/rw, and at newRoot an overlay of the squashfs under the
// tmpfs's upper directory. Undone on failure.
func SquashfsOverlay(dev, dir, newRoot string) (err error) {
	lower, rw := filepath.Join(dir, "lower"), filepath.Join(dir, "rw")
	upper, work := filepath.Join(rw, "upper"), filepath.Join(rw, "work")
	for _, d := range []string{lower, rw, newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("squashfs root: %w", err)
		}
	}
	if err := unix.Mount(dev, lower, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("squashfs root: mount %s on %s: %w", dev, lower, err)
	}
	defer func() {
		if err != nil {
			unix.Unmount(lower, unix.MNT_DETACH)
		}
	}()
	if err := unix.Mount("tmpfs", rw, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("squashfs root: mount tmpfs on %s: %w", rw, err)
	}
	defer func() {
		if err != nil {
			unix.Unmount(rw, unix.MNT_DETACH)
		}
	}()
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("squashfs root: %w", err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", newRoot, "overlay", 0, opts); err != nil {
		return fmt.Errorf("squashfs root: mount overlay on %s: %w", newRoot, err)
	}
	return nil
}
