// Package mount holds everything keel's PID 1 mounts and unmounts: the
// move out of the initramfs, the system filesystems, bundle root
// filesystems and runtime.json mounts, and the record that lets shutdown
// unmount them all in reverse order.
package mount

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Table records the mounts PID 1 made, in the order it made them, so that
// shutdown can undo them children first. Mounts PID 1 found already in
// place are not recorded: they are not its to undo.
type Table struct {
	mu      sync.Mutex
	targets []string
}

// Mount mounts like mount(2) and records target when it succeeds.
func (t *Table) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", source, fstype, target, err)
	}
	t.Record(target)
	return nil
}

// Record adds a mount made by other means.
func (t *Table) Record(target string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.targets = append(t.targets, target)
}

// Targets returns the recorded mount points, oldest first.
func (t *Table) Targets() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.targets)
}

// Unmounter undoes one mount; the real one calls umount2 and mount(2).
type Unmounter interface {
	Unmount(target string) error
	// RemountReadOnly is the fallback for a mount still in use: its data
	// is then safe even though it stays mounted.
	RemountReadOnly(target string) error
}

// UnmountAll unmounts every recorded mount, newest first, so that a mount
// goes before the one it sits on. A busy mount is remounted read-only
// instead. It goes on past failures and returns them all; the table is
// empty afterwards.
func (t *Table) UnmountAll(u Unmounter) error {
	t.mu.Lock()
	targets := t.targets
	t.targets = nil
	t.mu.Unlock()

	slices.Reverse(targets)
	return unmountEach(u, targets)
}

// Syscalls is the Unmounter of the running system.
type Syscalls struct{}

// Unmount implements Unmounter.
func (Syscalls) Unmount(target string) error { return unix.Unmount(target, 0) }

// RemountReadOnly implements Unmounter.
func (Syscalls) RemountReadOnly(target string) error {
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
}

func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
