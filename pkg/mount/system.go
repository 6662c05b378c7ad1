package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// fs is one filesystem PID 1 mounts at boot.
type fs struct {
	target, fstype, source string
	flags                  uintptr
	data                   string
	size                   TmpfsKind // a tmpfs limited to its kind's share of RAM
}

const (
	noSUIDDev     = unix.MS_NOSUID | unix.MS_NODEV
	noSUIDDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// systemFilesystems are mounted in this order; a parent always comes before
// what is mounted below it, which is what makes reverse order safe for
// unmounting.
var systemFilesystems = []fs{
	{"/proc", "proc", "proc", noSUIDDevExec, "", ""},
	{"/sys", "sysfs", "sysfs", noSUIDDevExec, "", ""},
	{"/dev", "devtmpfs", "devtmpfs", unix.MS_NOSUID, "mode=0755", ""},
	// newinstance gives PID 1 its own pts instance, as every container
	// gets; ptmxmode lets anyone open its ptmx.
	{"/dev/pts", "devpts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", ""},
	{"/dev/shm", "tmpfs", "shm", noSUIDDev, "mode=1777", TmpfsShm},
	{"/dev/mqueue", "mqueue", "mqueue", noSUIDDevExec, "", ""},
	{"/sys/fs/cgroup", "cgroup2", "cgroup2", noSUIDDevExec, "", ""},
	{"/run", "tmpfs", "tmpfs", noSUIDDev, "mode=0755", TmpfsRun},
	{"/tmp", "tmpfs", "tmpfs", noSUIDDev, "mode=1777", TmpfsTmp},
	{"/var", "tmpfs", "tmpfs", noSUIDDev, "mode=0755", TmpfsVar},
}

// withSize returns f's data with its size limit for a machine of memTotal
// bytes appended.
func (f fs) withSize(memTotal uint64) string {
	opt := tmpfsSizeData(f.size, memTotal)
	switch {
	case f.size == "" || opt == "":
		return f.data
	case f.data == "":
		return opt
	}
	return f.data + "," + opt
}

// systemSteps are what System does, replaceable so that a test can check
// that one failure stops nothing (the real ones touch /, /dev and /proc).
type systemSteps struct {
	mount    func(fs) error
	devLinks func() error
	share    func() error
}

// System mounts the filesystems a Linux system and libcontainer expect,
// records them in t and makes / recursively shared, so that mounts made
// later under a container's bind-mounted path propagate as LinuxKit's
// services expect. What is already mounted is left as it is, so that
// calling it twice (or after the kernel mounted devtmpfs) is harmless.
// The tmpfs mounts are limited in size (see TmpfsSize).
//
// A failure stops nothing: every mount, the /dev links and the rshared
// step are tried, and the failures are returned joined, each naming its
// target. A machine with /var missing but /run and cgroups in place can
// still run services and be debugged; one that stopped at /dev/pts could
// do neither.
func (t *Table) System() error {
	var errs []error
	mem, err := MemTotal()
	if err != nil {
		// Mount anyway, with the kernel's default limits.
		errs = append(errs, fmt.Errorf("tmpfs size limits: %w", err))
	}
	errs = append(errs, t.system(systemSteps{mount: t.mountOnce, devLinks: devLinks, share: shareRoot}, mem))
	return errors.Join(errs...)
}

func (t *Table) system(steps systemSteps, memTotal uint64) error {
	var errs []error
	for _, f := range systemFilesystems {
		f.data = f.withSize(memTotal)
		if err := steps.mount(f); err != nil {
			errs = append(errs, fmt.Errorf("system mount %s: %w", f.target, err))
		}
	}
	if err := steps.devLinks(); err != nil {
		errs = append(errs, err)
	}
	if err := steps.share(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func shareRoot() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make / rshared: %w", err)
	}
	return nil
}

func (t *Table) mountOnce(f fs) error {
	if err := os.MkdirAll(f.target, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", f.target, err)
	}
	mounted, err := mountinfo.Mounted(f.target)
	if err != nil {
		return fmt.Errorf("check whether %s is mounted: %w", f.target, err)
	}
	if mounted {
		return nil
	}
	return t.Mount(f.source, f.target, f.fstype, f.flags, f.data)
}

// devLinks makes the /dev symlinks devtmpfs leaves to userspace. /dev/ptmx
// must point into our devpts instance: the devtmpfs node would open the
// kernel's initial instance, where container ptys do not live.
func devLinks() error {
	links := []struct{ name, target string }{
		{"/dev/ptmx", "pts/ptmx"},
		{"/dev/fd", "/proc/self/fd"},
		{"/dev/stdin", "/proc/self/fd/0"},
		{"/dev/stdout", "/proc/self/fd/1"},
		{"/dev/stderr", "/proc/self/fd/2"},
	}
	// Each link is tried whatever happened to the others.
	var errs []error
	for _, l := range links {
		if cur, err := os.Readlink(l.name); err == nil && cur == l.target {
			continue
		}
		if err := os.Remove(l.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("replace %s: %w", l.name, err))
			continue
		}
		if err := os.Symlink(l.target, l.name); err != nil {
			errs = append(errs, fmt.Errorf("link %s to %s: %w", l.name, l.target, err))
		}
	}
	return errors.Join(errs...)
}

// EnableControllers delegates every cgroup v2 controller the root offers to
// its children, so that containers' cgroups can be given limits. It returns
// the controllers it enabled; one that cannot be enabled is skipped (the
// error names it), the others still are.
func EnableControllers(cgroupRoot string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup controllers: %w", err)
	}
	control := filepath.Join(cgroupRoot, "cgroup.subtree_control")
	var enabled []string
	var errs []error
	for _, c := range strings.Fields(string(b)) {
		// One write per controller: a single write with all of them fails
		// as a whole if any one is refused.
		if err := os.WriteFile(control, []byte("+"+c), 0); err != nil {
			errs = append(errs, fmt.Errorf("enable cgroup controller %s: %w", c, err))
			continue
		}
		enabled = append(enabled, c)
	}
	return enabled, errors.Join(errs...)
}

// BindSelf bind-mounts dir onto itself and remounts it read-write, or
// read-only when readonly is set, and records it. A bundle's rootfs needs
// this: pivot_root wants a mount point, and the image's files are otherwise
// part of / (writable or not, whatever / is).
func (t *Table) BindSelf(dir string, readonly bool) error {
	if err := t.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	if readonly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s (readonly=%t): %w", dir, readonly, err)
	}
	return nil
}
