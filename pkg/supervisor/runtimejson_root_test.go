package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func writeRuntime(t *testing.T, root string, name string, rt *bundle.Runtime) {
	t.Helper()
	b, err := bundle.MarshalRuntime(rt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, bundle.OnbootDir, name, bundle.RuntimeFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func testOnboot(t *testing.T, root string) (*Onboot, *syncBuffer, *mount.Table) {
	var out syncBuffer
	console := bootlog.New(&out)
	var mounts mount.Table
	t.Cleanup(func() {
		if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
			t.Error(err)
		}
	})
	return &Onboot{
		Runner:     &ContainerRunner{Reaper: startReaper(t), StateDir: filepath.Join(root, "run/state")},
		Mounts:     &mounts,
		Console:    console,
		Log:        slog.New(console.Handler(slog.LevelInfo)),
		LogDir:     filepath.Join(root, "var/log"),
		CgroupRoot: filepath.Join(root, "cgroup"),
	}, &out, &mounts
}

// runtime.json's interfaces, bindNS and cgroups: a veth pair whose one end
// is in the container's network namespace before its program runs, the
// other on the host; the namespace bound to a file that outlives the
// container.
func TestOnbootInterfacesBindNSCgroups(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	const inside, peer = "kltest0", "kltest0p"
	writeBundle(t, root, 0, "net", "/bin/sh", "-c", "ls /sys/class/net")
	netns := filepath.Join(root, "run/netns/net")
	writeRuntime(t, root, "000-net", &bundle.Runtime{
		Interfaces: []bundle.Interface{{Name: inside, Add: "veth", Peer: peer}},
		BindNS:     bundle.Namespaces{Net: netns},
		Cgroups:    []string{"podruntime/keel"},
	})
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(peer); err == nil {
			netlink.LinkDel(l)
		}
	})
	bundles, _ := bundle.List(root, bundle.Onboot)
	o, out, _ := testOnboot(t, root)
	results := o.RunAll(context.Background(), bundles)
	if len(results) != 1 || results[0].Failed() {
		t.Fatalf("results %+v\n%s", results, out.String())
	}
	if !strings.Contains(out.String(), "000-net: "+inside) {
		t.Errorf("%s not in the container's namespace:\n%s", inside, out.String())
	}
	if _, err := netlink.LinkByName(peer); err != nil {
		t.Errorf("peer %s not on the host: %v", peer, err)
	}
	if _, err := netlink.LinkByName(inside); err == nil {
		t.Errorf("%s left on the host", inside)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(netns, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Errorf("%s is not a bound namespace (statfs type %#x, %v)", netns, st.Type, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup/podruntime/keel")); err != nil {
		t.Errorf("cgroup not made: %v", err)
	}
}

// A failing onboot with onFailure: halt stops the run there; one that
// cannot even be prepared counts as failing.
func TestOnbootHaltPolicy(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	writeBundle(t, root, 0, "ok", "/bin/true")
	writeBundle(t, root, 1, "soft", "/bin/false")
	writeBundle(t, root, 2, "badnet", "/bin/true")
	writeRuntime(t, root, "002-badnet", &bundle.Runtime{Interfaces: []bundle.Interface{{Name: "kl-none-such"}}})
	writeBundle(t, root, 3, "hard", "/bin/sh", "-c", "exit 4")
	writeRuntime(t, root, "003-hard", &bundle.Runtime{OnFailure: bundle.OnFailureHalt})
	writeBundle(t, root, 4, "never", "/bin/sh", "-c", "echo never ran")
	bundles, _ := bundle.List(root, bundle.Onboot)
	o, out, _ := testOnboot(t, root)
	results := o.RunAll(context.Background(), bundles)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4 (stop at 003-hard):\n%s", len(results), out.String())
	}
	if results[2].Err == nil || !strings.Contains(results[2].Err.Error(), "kl-none-such") || results[2].Halt {
		t.Errorf("badnet: %+v", results[2])
	}
	r, ok := Fatal(results)
	if !ok || r.Bundle.Name != "003-hard" || r.Exit.Code() != 4 {
		t.Errorf("Fatal = %+v, %v", r, ok)
	}
	if s := out.String(); strings.Contains(s, "never ran") || !strings.Contains(s, "onboot 003-hard failed and its onFailure is halt: halting") {
		t.Errorf("console:\n%s", s)
	}
}
