package modules

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keel-os/keel/pkg/kmod"
	"github.com/keel-os/keel/pkg/testenv"
	"golang.org/x/sys/unix"
)

// The modalias patterns coldplug relies on, as modprobe matches them.
func TestMatchAliasCases(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"acpi*:PNP0C0C:*", "acpi:PNP0C0C:", true},
		{"acpi*:LNXPWRBN:*", "acpi:LNXPWRBN:", true},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0094,00E6", true},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0095", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"x[0-9]y", "x5y", true},
		{"x[!0-9]y", "x5y", false},
		{"x[!0-9]y", "xay", true},
		{"x[]]y", "x]y", true},
		{"x[ab", "x[ab", true}, // unclosed: literal
		{"a/*", "a/b/c", true}, // no FNM_PATHNAME
		{"", "", true},
		{"*", "", true},
		{"abc", "abcd", false},
	} {
		if got := kmod.MatchAlias(tc.pattern, tc.s); got != tc.want {
			t.Errorf("MatchAlias(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func mod(name, path string, depends []string, aliases ...string) *kmod.Module {
	return &kmod.Module{Name: name, Path: path, Info: &kmod.Info{Name: name, Depends: depends, Aliases: aliases}}
}

// testTree is shaped like the lean set: virtio_pci drives the PCI
// function and makes virtio devices, which virtio_net and virtio_rng
// drive; button and evdev have no hardware dependencies.
func testTree() *kmod.Tree {
	return kmod.NewTree([]*kmod.Module{
		mod("virtio_pci", "kernel/drivers/virtio/virtio_pci.ko", []string{"virtio_pci_modern_dev", "virtio", "virtio_ring"}, "pci:v00001AF4d*sv*sd*bc*sc*i*"),
		mod("virtio_pci_modern_dev", "kernel/drivers/virtio/virtio_pci_modern_dev.ko", nil),
		mod("virtio", "kernel/drivers/virtio/virtio.ko", nil),
		mod("virtio_ring", "kernel/drivers/virtio/virtio_ring.ko", nil),
		mod("virtio_net", "kernel/drivers/net/virtio_net.ko", []string{"net_failover", "virtio", "virtio_ring"}, "virtio:d00000001v*"),
		mod("net_failover", "kernel/drivers/net/net_failover.ko", []string{"failover"}),
		mod("failover", "kernel/net/core/failover.ko", nil),
		mod("virtio_rng", "kernel/drivers/char/hw_random/virtio-rng.ko", []string{"virtio", "virtio_ring"}, "virtio:d00000004v*"),
		mod("crc32c_intel", "kernel/arch/x86/crypto/crc32c-intel.ko", nil, "cpu:type:x86,ven*fam*mod*:feature:*0094*", "crc32c"),
		mod("button", "kernel/drivers/acpi/button.ko", nil, "acpi*:PNP0C0C:*", "acpi*:LNXPWRBN:*"),
		mod("evdev", "kernel/drivers/input/evdev.ko", nil, "input:b*v*p*e*-e*k*r*a*m*l*s*f*w*"),
	}, []string{"kernel/drivers/virtio/virtio_mmio.ko"})
}

// fakeSys is a /sys with modalias files; loading virtio_pci adds
// the virtio devices, as the real driver does.
type fakeSys struct {
	t      *testing.T
	root   string
	calls  []string
	fail   map[string]error
	loaded map[string]bool
}

func newFakeSys(t *testing.T, devices map[string]string) *fakeSys {
	f := &fakeSys{t: t, root: t.TempDir(), fail: map[string]error{}, loaded: map[string]bool{}}
	for dev, alias := range devices {
		f.add(dev, alias)
	}
	return f
}

func (f *fakeSys) add(dev, alias string) {
	p := filepath.Join(f.root, dev, "modalias")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(alias+"\n"), 0o444); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) loader() *Loader {
	l := New(testTree(), nil)
	l.dir = "/lib/modules/x"
	l.isLoaded = func(name string) bool { return f.loaded[name] }
	l.finit = func(path string) error {
		name := kmod.NormalizeName(path)
		f.calls = append(f.calls, name)
		if err := f.fail[name]; err != nil {
			return err
		}
		f.loaded[name] = true
		if name == "virtio_pci" {
			f.add("bus/virtio/devices/virtio0", "virtio:d00000001v00001AF4")
			f.add("bus/virtio/devices/virtio1", "virtio:d00000004v00001AF4")
		}
		return nil
	}
	return l
}

func TestColdplugLoadsNewDevicesDriversWithDeps(t *testing.T) {
	f := newFakeSys(t, map[string]string{
		"bus/pci/devices/0000:00:02.0":  "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
		"bus/pci/devices/0000:00:03.0":  "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00",
		"bus/pci/devices/0000:00:1f.0":  "pci:v00008086d00002918sv00001AF4sd00001100bc06sc01i00",
		"devices/system/cpu":            "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0094",
		"bus/acpi/devices/LNXPWRBN:00":  "acpi:LNXPWRBN:",
		"class/input/input0":            "nothing:matches",
		"devices/pci0000:00/not-a-glob": "virtio:d00000004v00001AF4",
	})
	f.fail["crc32c_intel"] = unix.ENODEV
	l := f.loader()
	r, err := l.Coldplug(f.root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"button", "virtio_pci_modern_dev", "virtio", "virtio_ring", "virtio_pci",
		"failover", "net_failover", "virtio_net", "virtio_rng"}
	if !slices.Equal(r.Loaded, want) {
		t.Errorf("loaded %q\nwant   %q", r.Loaded, want)
	}
	if !errors.Is(r.Failed["crc32c_intel"], unix.ENODEV) || len(r.Failed) != 1 {
		t.Errorf("failed %v, want crc32c_intel: ENODEV", r.Failed)
	}
	// Nothing is tried twice, and a failed module is not retried.
	r2, err := l.Coldplug(f.root)
	if err != nil || len(r2.Loaded) != 0 || len(r2.Failed) != 0 {
		t.Errorf("second coldplug: %+v, %v", r2, err)
	}
	if n := len(f.calls); n != len(want)+1 {
		t.Errorf("%d finit calls, want %d: %q", n, len(want)+1, f.calls)
	}
}

func TestLoadByName(t *testing.T) {
	f := newFakeSys(t, nil)
	f.loaded["virtio"] = true // already there: not loaded again
	f.fail["failover"] = unix.EEXIST
	l := f.loader()
	r := l.Load("button", "evdev", "virtio_net", "virtio_mmio", "nope")
	if want := []string{"button", "evdev", "failover", "net_failover", "virtio_ring", "virtio_net"}; !slices.Equal(r.Loaded, want) {
		t.Errorf("loaded %q, want %q", r.Loaded, want)
	}
	if len(r.Failed) != 0 {
		t.Errorf("failed: %v (EEXIST is success; built-in virtio_mmio needs nothing)", r.Failed)
	}
	if !slices.Equal(r.Unknown, []string{"nope"}) {
		t.Errorf("unknown %q", r.Unknown)
	}
}

func TestFailedDependencyStopsDependents(t *testing.T) {
	f := newFakeSys(t, nil)
	f.fail["failover"] = unix.ENOENT
	l := f.loader()
	r := l.Load("virtio_net")
	if len(r.Loaded) != 0 {
		t.Errorf("loaded %q after a failed dependency", r.Loaded)
	}
	if !errors.Is(r.Failed["virtio_net"], unix.ENOENT) || !errors.Is(r.Failed["failover"], unix.ENOENT) {
		t.Errorf("failed %v", r.Failed)
	}
	// Asking again fails at once, without another finit.
	calls := len(f.calls)
	r = l.Load("net_failover")
	if len(f.calls) != calls || r.Failed["net_failover"] == nil {
		t.Errorf("retried a failed dependency: %q, %v", f.calls, r.Failed)
	}
}

func TestMatch(t *testing.T) {
	l := New(testTree(), nil)
	if got := l.Match("virtio:d00000001v00001AF4"); !slices.Equal(got, []string{"virtio_net"}) {
		t.Errorf("Match = %q", got)
	}
	if got := l.Match("pci:v00008086d00002918sv0sd0bc06sc01i00"); len(got) != 0 {
		t.Errorf("Match = %q, want nothing", got)
	}
}

// TestRealTree matches real modaliases against a real lean module tree and
// loads the lean set from it with a fake finit_module, when one is given:
// KMOD_TEST_TREE=/path/lib/modules/6.1.0-56-cloud-amd64 (make test-go sets
// it to the tree of keel/kernel:$(KERNEL_ABI)).
func TestRealTree(t *testing.T) {
	dir := testenv.Env(t, "KMOD_TEST_TREE", "make test-go sets it")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("KMOD_TEST_TREE=%s: not a directory: %v", dir, err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "lib/modules/test")); err != nil {
		t.Fatal(err)
	}
	l, source, err := OpenRelease(root, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if source != "tree" {
		t.Fatalf("source %q, want tree", source)
	}
	for alias, want := range map[string][]string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00": {"virtio_pci"},
		"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00": {"virtio_pci"},
		"virtio:d00000001v00001AF4":                             {"virtio_net"},
		"virtio:d00000002v00001AF4":                             {"virtio_blk"},
		"virtio:d00000004v00001AF4":                             {"virtio_rng"},
		"acpi:LNXPWRBN:":                                        {"button"},
		"pci:v00008086d00002918sv00001AF4sd00001100bc06sc01i00": nil,
	} {
		if got := l.Match(alias); !slices.Equal(got, want) {
			t.Errorf("Match(%s) = %q, want %q", alias, got, want)
		}
	}

	// Load with a fake finit_module: each file it is given is a module of
	// the tree, loaded once, after every module it depends on.
	var calls []string
	loaded := map[string]bool{}
	l.isLoaded = func(name string) bool { return loaded[name] }
	l.finit = func(path string) error {
		rel, err := filepath.Rel(filepath.Join(root, "lib/modules/test"), path)
		if err != nil || !filepath.IsLocal(rel) {
			t.Errorf("finit(%s): not under the tree", path)
			return unix.ENOENT
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("finit(%s): %v", path, err)
			return unix.ENOENT
		}
		name := kmod.NormalizeName(path)
		m, ok := l.tree.Module(name)
		if !ok || m.Path != filepath.ToSlash(rel) {
			t.Errorf("finit(%s): not the file of a module of the tree", path)
			return unix.ENOENT
		}
		if loaded[name] {
			t.Errorf("%s loaded twice", name)
		}
		for _, d := range m.Info.Depends {
			if !loaded[kmod.NormalizeName(d)] && !l.tree.IsBuiltin(d) {
				t.Errorf("%s loaded before its dependency %s", name, d)
			}
		}
		calls = append(calls, name)
		loaded[name] = true
		return nil
	}
	r := l.Load("virtio_net")
	if want := []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}; !sameSet(r.Loaded, want) {
		t.Errorf("Load(virtio_net) loaded %q, want %q in some order", r.Loaded, want)
	}
	r = l.Load("overlay", "button", "evdev", "ext4", "br_netfilter", "nft_compat", "vmw_vsock_virtio_transport")
	if want := []string{"overlay", "button", "evdev", "llc", "stp", "bridge", "br_netfilter",
		"nfnetlink", "crc32c_intel", "libcrc32c", "nf_tables", "x_tables", "nft_compat",
		"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"}; !sameSet(r.Loaded, want) {
		t.Errorf("loaded %q, want %q in some order", r.Loaded, want)
	}
	if len(r.Failed) != 0 || len(r.Unknown) != 0 {
		t.Errorf("failed %v, unknown %q", r.Failed, r.Unknown)
	}
	if len(calls) != 5+16 {
		t.Errorf("%d finit calls, want %d: %q", len(calls), 5+16, calls)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
