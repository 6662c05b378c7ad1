package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
		Engine:   &Libcontainer{Reaper: startReaper(t), StateDir: filepath.Join(root, "run/state")},
		Preparer: &Preparer{Mounts: &mounts, CgroupRoot: filepath.Join(root, "cgroup")},
		Console:  console,
		Log:      slog.New(console.Handler(slog.LevelInfo)),
		LogDir:   filepath.Join(root, "var/log"),
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
	o.Console.Flush(time.Minute)
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
	o.Console.Flush(time.Minute)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4 (stop at 003-hard):\n%s", len(results), out.String())
	}
	if results[2].Err == nil || !strings.Contains(results[2].Err.Error(), "kl-none-such") || results[2].Halt {
		t.Errorf("badnet: %+v", results[2])
	}
	r, ok := Fatal(results)
	if !ok || r.Bundle.Name != "003-hard" || r.Code != 4 {
		t.Errorf("Fatal = %+v, %v", r, ok)
	}
	if s := out.String(); strings.Contains(s, "never ran") || !strings.Contains(s, "onboot 003-hard failed and its onFailure is halt: halting") {
		t.Errorf("console:\n%s", s)
	}
}

// A bundle with interfaces and bindNS run again and again, as a service
// restarts: each run gets its interface, and the namespace bind does not
// stack. Before, each run added a bind on top of the last; the old binds
// kept the old namespaces, and the veth peer in them, alive, so the next
// run's LinkAdd failed with "file exists".
func TestBindNSAcrossRestarts(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	const inside, peer = "klrst0", "klrst0p"
	writeBundle(t, root, 0, "net", "/bin/sh", "-c", "ls /sys/class/net; exit 1")
	netns := filepath.Join(root, "run/netns/net")
	writeRuntime(t, root, "000-net", &bundle.Runtime{
		Interfaces: []bundle.Interface{{Name: inside, Add: "veth", Peer: peer}},
		BindNS:     bundle.Namespaces{Net: netns},
	})
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(peer); err == nil {
			netlink.LinkDel(l)
		}
	})
	bundles, _ := bundle.List(root, bundle.Onboot)
	o, out, mounts := testOnboot(t, root)
	p, err := o.Preparer.Prepare(bundles[0])
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	var u *Unit
	var startErr error
	inner := o.Engine.Runner("restarting", p, out, out)
	// A failed start would be retried for ever: the first one ends the test.
	runner := RunnerFunc(func(ctx context.Context) (Process, error) {
		proc, err := inner.Start(ctx)
		if err != nil && startErr == nil {
			startErr = err
			go u.Stop(context.Background())
		}
		return proc, err
	})
	u = &Unit{Name: "net", Runner: runner, Policy: OnFailure,
		Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond, Reset: time.Hour}, Log: o.Log,
		OnStart: func(Process) {
			// Asked here, at once: a Stop in a goroutine could come after
			// this run ended (it exits 1) and the next began.
			if runs.Add(1) == 3 {
				u.cancel()
			}
		}}
	u.Run(context.Background())
	if startErr != nil {
		t.Fatalf("run %d failed to start: %v", runs.Load()+1, startErr)
	}
	if runs.Load() != 3 {
		t.Fatalf("%d runs started, want 3; status %+v\n%s", runs.Load(), u.Status(), out.String())
	}
	if n := slices.Index(strings.Split(out.String(), "\n"), inside); n < 0 || strings.Count(out.String(), inside+"\n") < 2 {
		t.Errorf("%s not seen in two runs at least:\n%s", inside, out.String())
	}
	// Bound now, and once: after one unmount nothing is left on the path
	// (stacked binds would leave the older ones).
	var st unix.Statfs_t
	if err := unix.Statfs(netns, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("%s is not a bound namespace (statfs type %#x, %v)", netns, st.Type, err)
	}
	if n := slices.Index(mounts.Targets(), netns); n < 0 || slices.Index(mounts.Targets()[n+1:], netns) >= 0 {
		t.Errorf("mount table records %s %d times, want once", netns, strings.Count(strings.Join(mounts.Targets(), "\n"), netns))
	}
	if err := unix.Unmount(netns, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(netns, &st); err != nil || st.Type == unix.NSFS_MAGIC {
		t.Errorf("%s still holds a namespace after one unmount: the binds stacked (%v)", netns, err)
	}
}
