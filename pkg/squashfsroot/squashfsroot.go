// Package squashfsroot puts the root of a kernel+squashfs build in
// place: the small initrd holds the modules to reach the disk and a file
// naming the partition; the system is the squashfs on it, under a tmpfs
// overlay. The small initrd's own /init (cmd/squashfsinit) does it, then
// hands over to PID 1 on the disk; PID 1 does it itself when an initrd
// has it as /init instead (init images without the small init).
package squashfsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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

// Mount makes a kernel+squashfs build's disk the root: when the small
// initrd names the partition holding the system (bundle.SquashfsRootFile),
// it loads the modules to reach it, mounts it under a tmpfs overlay,
// removes the initrd's own files and moves the overlay to /. It reports
// whether it did; done is false, with no error, for any other initrd.
// The caller then runs the new root's /init (ExecInit).
func Mount(log *slog.Logger) (done bool, err error) {
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
	dev, err := mount.FindPartition("/sys", part, 0)
	if errors.Is(err, mount.ErrNoPartition) {
		// A person on the console should know what the boot waits for.
		log.Info("squashfs root: waiting for the disk", "partition", part, "timeout", partitionTimeout)
		dev, err = mount.FindPartition("/sys", part, partitionTimeout)
	}
	if err != nil {
		return false, err
	}
	if err := mount.SquashfsOverlay(dev, squashfsDir, mount.StagingRoot); err != nil {
		return false, err
	}
	// Unmounted before the move, or they would stay under the new root.
	unix.Unmount("/sys", unix.MNT_DETACH)
	unix.Unmount("/dev", unix.MNT_DETACH)
	// The small initrd's files would hold RAM for the life of the VM,
	// out of reach under the new root: they go, as switch_root does.
	freed := freeInitramfs(log)
	if err := mount.MoveRoot(mount.StagingRoot); err != nil {
		return false, err
	}
	log.Info("root on squashfs", "device", dev, "partition", part, "freed", fmt.Sprintf("%dkB", freed>>10),
		"duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// ExecInit runs the new root's /init, PID 1, in place of this program,
// with the same arguments and environment; the caller's pages, the
// initrd's last file in use, go with it. PID 1 finds / off the initramfs
// and boots on. It returns only if the exec failed.
func ExecInit() error {
	return unix.Exec("/init", os.Args, os.Environ())
}

// freeInitramfs removes the small initrd's files, but for the mounts the
// new root is made of, and returns how many bytes of files it removed.
func freeInitramfs(log *slog.Logger) (freed int64) {
	es, err := os.ReadDir("/")
	if err != nil {
		log.Warn("squashfs root: free initramfs", "err", err)
		return 0
	}
	for _, e := range es {
		p := "/" + e.Name()
		if p == squashfsDir || p == mount.StagingRoot {
			continue
		}
		filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					freed += info.Size()
				}
			}
			return nil
		})
		if err := os.RemoveAll(p); err != nil {
			log.Warn("squashfs root: free initramfs", "path", p, "err", err)
		}
	}
	return freed
}
