package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What runtime.json asks of the host, LinuxKit's way. The preparation
// comes in two halves: createCgroups before the container exists, and
// prepareNamespaces once its first process exists (its namespaces with
// it) but before that process runs the container's program, so that the
// program finds its interfaces in place. Services under containerd can use
// the same two with their task's pid.

// makeRuntimeDirs makes the directories runtime.json's mkdir lists;
// relative paths are inside the bundle.
func makeRuntimeDirs(b bundle.Bundle, rt *bundle.Runtime) error {
	for _, dir := range rt.Mkdir {
		if err := os.MkdirAll(inBundle(b, dir), 0o755); err != nil {
			return fmt.Errorf("runtime.json mkdir: %w", err)
		}
	}
	return nil
}

// mountRuntime makes runtime.json's mounts, recorded in table so that
// shutdown unmounts them; relative sources of binds and relative
// destinations are inside the bundle.
func mountRuntime(b bundle.Bundle, rt *bundle.Runtime, table *mount.Table) error {
	if len(rt.Mounts) > 0 && table == nil {
		return errors.New("runtime.json mounts: no mount table")
	}
	for _, m := range rt.Mounts {
		if mount.IsBind(m) {
			m.Source = inBundle(b, m.Source)
		}
		m.Destination = inBundle(b, m.Destination)
		if err := table.MountSpec(m); err != nil {
			return fmt.Errorf("runtime.json mount: %w", err)
		}
	}
	return nil
}

// createRuntimeCgroups is createCgroups under cgroupRoot, or under
// /sys/fs/cgroup when that is empty.
func createRuntimeCgroups(cgroupRoot string, rt *bundle.Runtime) error {
	if cgroupRoot == "" {
		cgroupRoot = "/sys/fs/cgroup"
	}
	return createCgroups(cgroupRoot, rt.Cgroups)
}

// createCgroups makes the cgroups runtime.json lists under the cgroup v2
// root (normally /sys/fs/cgroup), e.g. "podruntime/containerd". An
// existing one is fine.
func createCgroups(cgroupRoot string, names []string) error {
	for _, n := range names {
		clean := filepath.Clean("/" + n)
		if clean == "/" {
			return fmt.Errorf("runtime.json cgroup %q: not a cgroup name", n)
		}
		if err := os.MkdirAll(filepath.Join(cgroupRoot, clean), 0o755); err != nil {
			return fmt.Errorf("runtime.json cgroup %s: %w", n, err)
		}
	}
	return nil
}

// prepareNamespaces does, for the container whose first process is pid,
// what runtime.json's interfaces and bindNS say. Namespace bind mounts are
// recorded in mounts, so that shutdown undoes them, and returned.
func prepareNamespaces(rt *bundle.Runtime, pid int, mounts *mount.Table) (binds []string, err error) {
	for _, iface := range rt.Interfaces {
		if err := addInterface(iface, pid); err != nil {
			return nil, err
		}
	}
	ns := rt.BindNS
	for _, b := range []struct{ kind, path string }{
		{"cgroup", ns.Cgroup}, {"ipc", ns.Ipc}, {"mnt", ns.Mnt}, {"net", ns.Net},
		{"pid", ns.Pid}, {"user", ns.User}, {"uts", ns.Uts},
	} {
		if b.path == "" {
			continue
		}
		if err := bindNS(mounts, pid, b.kind, b.path); err != nil {
			return binds, err
		}
		binds = append(binds, b.path)
	}
	return binds, nil
}

// addInterface follows LinuxKit: with a peer (and "add: veth" or no add),
// a veth pair is made in the host namespace and the end called name moves
// into the container, the peer staying on the host; another "add" makes a
// link of that type (in the host first when createInRoot is set); no
// "add" moves an existing host link called name into the container.
func addInterface(iface bundle.Interface, pid int) error {
	if iface.Name == "" {
		return errors.New("runtime.json interface: no name")
	}
	add := iface.Add
	if add == "" && iface.Peer != "" {
		add = "veth"
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = iface.Name
	var link netlink.Link
	move := true
	switch add {
	case "":
		l, err := netlink.LinkByName(iface.Name)
		if err != nil {
			return fmt.Errorf("runtime.json interface %s: find it: %w", iface.Name, err)
		}
		link = l
	case "veth":
		if iface.Peer == "" {
			return fmt.Errorf("runtime.json interface %s: a veth needs a peer", iface.Name)
		}
		link = &netlink.Veth{LinkAttrs: attrs, PeerName: iface.Peer}
	default:
		if !iface.CreateInRoot {
			// Made directly inside the container's namespace.
			attrs.Namespace = netlink.NsPid(pid)
			move = false
		}
		link = &netlink.GenericLink{LinkAttrs: attrs, LinkType: add}
	}
	if add != "" {
		if err := netlink.LinkAdd(link); err != nil {
			return fmt.Errorf("runtime.json interface %s: add %s: %w", iface.Name, add, err)
		}
	}
	if move {
		if err := netlink.LinkSetNsPid(link, pid); err != nil {
			if add != "" {
				_ = netlink.LinkDel(link)
			}
			return fmt.Errorf("runtime.json interface %s: move into the container's network namespace: %w", iface.Name, err)
		}
	}
	return nil
}

// bindNS bind-mounts /proc/<pid>/ns/<kind> at path, so that the namespace
// outlives the container and others can join it (LinuxKit's bindNS).
func bindNS(mounts *mount.Table, pid int, kind, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("runtime.json bindNS %s: %w", kind, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("runtime.json bindNS %s: %w", kind, err)
	}
	f.Close()
	src := filepath.Join("/proc", strconv.Itoa(pid), "ns", kind)
	if err := mounts.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("runtime.json bindNS %s: %w", kind, err)
	}
	return nil
}
