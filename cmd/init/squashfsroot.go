package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/modules"
	"github.com/keel-os/keel/pkg/mount"
)

const (
	// squashfsDir holds, in the small initrd, the squashfs and the tmpfs
	// the new root overlays; both stay mounted there, under the new root.
	squashfsDir = "/.keel-squashfs"
	// partitionTimeout bounds the wait for the disk to show up once its
	// driver is loaded.
	partitionTimeout = 30 * time.Second
)

// squashfsRoot boots a kernel+squashfs build: when the small initrd names
// the partition holding the system (bundle.SquashfsRootFile), it loads the
// modules to reach it, mounts it under a tmpfs overlay and makes that the
// root. It reports whether it did; done is false, with no error, for any
// other initrd.
func squashfsRoot(log *slog.Logger) (done bool, err error) {
	b, err := os.ReadFile(bundle.SquashfsRootFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", bundle.SquashfsRootFile, err)
	}
	part := strings.TrimSpace(string(b))
	start := time.Now()
	// sysfs to find the disk, devtmpfs for its node: for the look only,
	// the system mounts them again in the new root.
	for _, m := range []struct{ dir, fstype string }{{"/sys", "sysfs"}, {"/dev", "devtmpfs"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return false, err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return false, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
		defer unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	if l, _, err := modules.Open("/", log); err != nil {
		log.Warn("squashfs root: no modules", "err", err) // built in, perhaps
	} else {
		r := l.Load(bundle.SquashfsModules...)
		log.Info("squashfs root: modules", "loaded", strings.Join(r.Loaded, ","), "failed", len(r.Failed))
		for name, err := range r.Failed {
			log.Warn("squashfs root: module", "module", name, "err", err)
		}
	}
	dev, err := mount.FindPartition("/sys", part, partitionTimeout)
	if err != nil {
		return false, err
	}
	if err := mount.SquashfsOverlay(dev, squashfsDir, newRootDir); err != nil {
		return false, err
	}
	// Unmounted before the move, or they would stay under the new root.
	unix.Unmount("/sys", unix.MNT_DETACH)
	unix.Unmount("/dev", unix.MNT_DETACH)
	if err := mount.MoveRoot(newRootDir); err != nil {
		return false, err
	}
	log.Info("root on squashfs", "device", dev, "partition", part, "duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}
