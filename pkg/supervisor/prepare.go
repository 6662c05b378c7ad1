package supervisor

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
)

// Preparer makes bundles ready to run. It is the one bundle preparation
// of keel: onboot, onshutdown and services all go through Prepare, and
// every run of a bundle through Prepared.BeforeRun.
type Preparer struct {
	// Mounts records what is mounted, so that shutdown undoes it.
	Mounts *mount.Table
	// CgroupRoot is where runtime.json's cgroups are made; /sys/fs/cgroup
	// if empty.
	CgroupRoot string
	// OverlayDir holds the writable layers of rootfs overlays
	// (runtime.json rootfsLower); DefaultOverlayDir if empty.
	OverlayDir string
}

// Prepared is a bundle ready to run: its spec and runtime.json read, its
// rootfs in place, runtime.json's directories, mounts and cgroups made.
type Prepared struct {
	Bundle  bundle.Bundle
	Spec    *specs.Spec // Root.Path is absolute: Rootfs
	Runtime *bundle.Runtime
	// Rootfs is the absolute path of the root filesystem.
	Rootfs string
	// Policy, Grace and Timeout are runtime.json's restart,
	// stopGracePeriod and timeout, read; Warnings says what was wrong with
	// them (the defaults then apply).
	Policy   Policy
	Grace    time.Duration
	Timeout  time.Duration
	Warnings []error

	mounts *mount.Table
	runs   int      // how many times BeforeRun ran
	binds  []string // bindNS mount points of the last run
}

// Prepare reads the bundle and makes its rootfs and runtime.json's host
// side: in this order, because each step may build on the one before.
//  1. the overlay of a shared image (rootfsLower), before anything touches
//     the rootfs, or it would land under the overlay;
//  2. runtime.json's mkdir, while the rootfs is still writable;
//  3. for onboot and onshutdown, the rootfs bound onto itself, read-only
//     when the spec says so (pivot_root wants a mount point); a service's
//     runc, under containerd, does that in the container's own mount
//     namespace, and a bind of ours in PID 1's shared tree as well was
//     seen to soft-lock the kernel (TCG, two services starting at once);
//  4. runtime.json's mounts, after the bind so that those inside the
//     rootfs land on top of it and the container sees them;
//  5. runtime.json's cgroups.
func (p *Preparer) Prepare(b bundle.Bundle) (*Prepared, error) {
	spec, err := bundle.ReadConfig(b.ConfigPath())
	if err != nil {
		return nil, err
	}
	if spec.Root == nil || spec.Process == nil {
		return nil, fmt.Errorf("%s: spec needs a root and a process", b.ConfigPath())
	}
	rt, err := bundle.ReadRuntime(b.RuntimePath())
	if err != nil {
		return nil, err
	}
	pr := &Prepared{Bundle: b, Runtime: rt, mounts: p.Mounts}
	pr.readPolicy()
	// A relative root is relative to the bundle: containerd's runc would
	// resolve it against its own bundle directory, libcontainer against
	// PID 1's working directory. The caller's spec is left untouched.
	s := *spec
	root := *spec.Root
	root.Path = inBundle(b, root.Path)
	s.Root = &root
	pr.Spec, pr.Rootfs = &s, root.Path

	if err := mountSharedRoot(p.Mounts, p.OverlayDir, b, rt, pr.Rootfs); err != nil {
		return nil, err
	}
	if err := makeRuntimeDirs(b, rt); err != nil {
		return nil, err
	}
	if b.Kind != bundle.Service {
		if p.Mounts == nil {
			return nil, errors.New("prepare rootfs: no mount table")
		}
		if err := p.Mounts.BindSelf(pr.Rootfs, root.Readonly); err != nil {
			return nil, fmt.Errorf("prepare rootfs: %w", err)
		}
	}
	if err := mountRuntime(b, rt, p.Mounts); err != nil {
		return nil, err
	}
	if err := createRuntimeCgroups(p.CgroupRoot, rt); err != nil {
		return nil, err
	}
	return pr, nil
}

func (pr *Prepared) readPolicy() {
	var errs [3]error
	pr.Policy, errs[0] = ParsePolicy(pr.Runtime.Restart)
	pr.Grace, errs[1] = ParseGrace(pr.Runtime.StopGracePeriod)
	pr.Timeout, errs[2] = parseTimeout(pr.Runtime.Timeout)
	for _, e := range errs {
		if e != nil {
			pr.Warnings = append(pr.Warnings, fmt.Errorf("%s: %w", pr.Bundle.RuntimePath(), e))
		}
	}
}

// Halts reports whether the bundle's failure halts the machine
// (runtime.json onFailure: halt).
func (pr *Prepared) Halts() bool { return pr.Runtime.OnFailure == bundle.OnFailureHalt }

// NeedsBeforeRun reports whether BeforeRun has anything to do, i.e. the
// runner must stop the container's first process before it runs the
// program.
func (pr *Prepared) NeedsBeforeRun() bool {
	rt := pr.Runtime
	return len(rt.Interfaces) > 0 || rt.BindNS != (bundle.Namespaces{})
}

// BeforeRun does runtime.json's interfaces and bindNS for the run whose
// first process (with its namespaces) is pid. What an earlier run of the
// bundle left is undone first: its namespace binds, which would otherwise
// stack on every restart and keep the old namespaces (and the interfaces
// in them) alive, and, on a restart, a veth peer of the same name still on
// the host while the kernel tears the old namespace down.
func (pr *Prepared) BeforeRun(pid int) error {
	for _, path := range pr.binds {
		if err := pr.mounts.Detach(path); err != nil {
			return fmt.Errorf("runtime.json bindNS: undo the last run's: %w", err)
		}
	}
	pr.binds = nil
	if pr.runs > 0 {
		for _, iface := range pr.Runtime.Interfaces {
			if iface.Peer == "" {
				continue
			}
			if l, err := netlink.LinkByName(iface.Peer); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	}
	pr.runs++
	binds, err := prepareNamespaces(pr.Runtime, pid, pr.mounts)
	pr.binds = binds
	return err
}

// parseTimeout reads runtime.json's timeout; empty is no limit.
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad timeout %q: want a duration like 30s", s)
	}
	return d, nil
}

// inBundle resolves a path from config.json or runtime.json: relative
// paths are relative to the bundle directory, as in LinuxKit.
func inBundle(b bundle.Bundle, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.Path, p)
}
