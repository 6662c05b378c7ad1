package mount

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Others returns the mount points of mounts, as /proc/self/mountinfo lists
// them, at or below under, that the table did not record and that are not
// /: mounts made by
// others into PID 1's mount namespace, such as a data disk an onboot
// container mounted with shared propagation. They are ordered deepest
// first, and among equals latest first, so that a mount is undone before
// the one it sits on, and the top of a stack before what it hides.
func (t *Table) Others(mounts []*mountinfo.Info, under string) []string {
	under = filepath.Clean(under)
	recorded := map[string]bool{}
	for _, m := range t.Targets() {
		recorded[filepath.Clean(m)] = true
	}
	type point struct {
		path  string
		order int
	}
	var pts []point
	for i, m := range mounts {
		p := filepath.Clean(m.Mountpoint)
		if p == "/" || recorded[p] || !(under == "/" || p == under || strings.HasPrefix(p, under+"/")) {
			continue
		}
		pts = append(pts, point{p, i})
	}
	slices.SortStableFunc(pts, func(a, b point) int {
		if da, db := depth(a.path), depth(b.path); da != db {
			return db - da
		}
		return b.order - a.order
	})
	out := make([]string, 0, len(pts))
	for _, p := range pts {
		out = append(out, p.path)
	}
	return out
}

func depth(p string) int { return strings.Count(p, "/") }

// UnmountOthers unmounts, deepest first, the mounts of PID 1's namespace
// at or below under (/ at shutdown) that the table did not record (see
// Others), remounting read-only any
// that is busy. Shutdown calls it before UnmountAll: filesystems that
// hold data, mounted by containers, must be cleanly unmounted too, or
// their journal needs a replay at the next mount and their last writes
// may sit in no one's care.
//
// mounts is the namespace's mount list, from mountinfo.GetMounts.
func (t *Table) UnmountOthers(u Unmounter, mounts []*mountinfo.Info, under string) error {
	return unmountEach(u, t.Others(mounts, under))
}

// unmountEach unmounts targets in the order given; see UnmountAll for
// how failures are dealt with.
func unmountEach(u Unmounter, targets []string) error {
	var errs []error
	for _, target := range targets {
		err := u.Unmount(target)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// Unmounted, or already gone (e.g. under a parent that went).
		case isBusy(err):
			if rerr := u.RemountReadOnly(target); rerr != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w; remount read-only: %w", target, err, rerr))
			}
		default:
			errs = append(errs, fmt.Errorf("unmount %s: %w", target, err))
		}
	}
	return errors.Join(errs...)
}
