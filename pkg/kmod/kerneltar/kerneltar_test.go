package kerneltar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/kmod"
)

// TestModuleIndexOfARealKernel reads a real kernel.tar when one is given,
// e.g. KEEL_TEST_KERNEL_TAR=/tmp/kernel.tar (from keel/kernel:6.1.0-56;
// make test-go sets it), matches the modaliases of a QEMU q35 guest's
// virtio devices and checks the dependencies the index holds against the
// .modinfo of Debian's 6.1 cloud kernel.
func TestModuleIndexOfARealKernel(t *testing.T) {
	p := os.Getenv("KEEL_TEST_KERNEL_TAR")
	if p == "" {
		t.Skip("KEEL_TEST_KERNEL_TAR not set (make test-go sets it)")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("KEEL_TEST_KERNEL_TAR: %v", err)
	}
	releases, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Index(releases)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := kmod.ReadIndex(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Kernels) != 1 {
		t.Fatalf("%d releases", len(ix.Kernels))
	}
	k := &ix.Kernels[0]
	t.Logf("%s: %d modules, %d built in, index %d bytes", k.Release, len(k.Modules), len(k.Builtin), len(b))

	// The index has every module file of the tar, at its path, and no other.
	var files []string
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rel, ok := strings.CutPrefix(path.Clean(h.Name), "lib/modules/"+k.Release+"/"); ok && kmod.IsModuleFile(rel) {
			files = append(files, rel)
		}
	}
	var indexed []string
	for _, m := range k.Modules {
		indexed = append(indexed, m.Path)
	}
	slices.Sort(files)
	slices.Sort(indexed)
	if len(files) == 0 || !slices.Equal(files, indexed) {
		t.Errorf("indexed %q\nthe tar has %q", indexed, files)
	}

	for modalias, want := range map[string][]string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00": {"virtio_pci"},
		"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00": {"virtio_pci"},
		"virtio:d00000001v00001AF4":                             {"virtio_net"},
		"virtio:d00000002v00001AF4":                             {"virtio_blk"},
		"virtio:d00000003v00001AF4":                             {"virtio_console"},
		"virtio:d00000004v00001AF4":                             {"virtio_rng"},
		"acpi:LNXPWRBN:":                                        {"button"},
	} {
		if got := k.Lookup(modalias); !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%s) = %q, want %q", modalias, got, want)
		}
	}

	// What the kernel's .modinfo declares (modinfo -F depends), in order.
	entries := map[string]kmod.IndexEntry{}
	for _, m := range k.Modules {
		entries[m.Name] = m
	}
	for name, want := range map[string][]string{
		"virtio_net":   {"virtio_ring", "virtio", "net_failover"},
		"net_failover": {"failover"},
		"failover":     nil,
		"overlay":      nil,
		"button":       nil,
		"evdev":        nil,
		"bridge":       {"llc", "stp"},
		"nf_conntrack": {"nf_defrag_ipv4", "nf_defrag_ipv6", "libcrc32c"},
	} {
		e, ok := entries[name]
		if !ok {
			t.Errorf("%s not in the index", name)
			continue
		}
		if !slices.Equal(e.Depends, want) {
			t.Errorf("%s depends on %q, want %q", name, e.Depends, want)
		}
	}
	if e := entries["libcrc32c"]; !slices.Equal(e.SoftPre, []string{"crc32c"}) {
		t.Errorf("libcrc32c softdep pre %q, want [crc32c]", e.SoftPre)
	}
	for _, b := range []string{"ext4", "crc32c_generic"} {
		if !slices.Contains(k.Builtin, b) {
			t.Errorf("%s not among the built-in modules %q", b, k.Builtin)
		}
	}
	// Every dependency named in the index is itself in it, or built in.
	for _, m := range k.Modules {
		for _, d := range m.Depends {
			if _, ok := entries[kmod.NormalizeName(d)]; !ok && !slices.Contains(k.Builtin, kmod.NormalizeName(d)) {
				t.Errorf("%s depends on %s, which is not in the index", m.Name, d)
			}
		}
	}

	// The closure resolved from the index: the right modules, each after
	// what it depends on.
	mods, err := k.Tree().Closure("virtio_net", "overlay", "button", "evdev")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	at := map[string]int{}
	for i, m := range mods {
		names = append(names, m.Name)
		at[m.Name] = i
	}
	want := []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net", "overlay", "button", "evdev"}
	if got := slices.Sorted(slices.Values(names)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("closure of virtio_net, overlay, button, evdev = %q, want %q in some order", names, want)
	}
	for i, m := range mods {
		for _, d := range m.Info.Depends {
			if j, ok := at[d]; !ok || j > i {
				t.Errorf("closure %q: %s does not come after its dependency %s", names, m.Name, d)
			}
		}
	}
}

// What the build adds to the guest from a real kernel.tar: the index, and
// depmod's files in the release's directory, the same as the tree read
// from disk gives (KMOD_TEST_TREE, that tar unpacked): exported symbols
// and the module order come through the tar as they do from the disk.
func TestGuestFilesOfARealKernel(t *testing.T) {
	p, dir := os.Getenv("KEEL_TEST_KERNEL_TAR"), os.Getenv("KMOD_TEST_TREE")
	if p == "" || dir == "" {
		t.Skip("KEEL_TEST_KERNEL_TAR or KMOD_TEST_TREE not set (make test-go sets both)")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	files, err := GuestFiles(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := kmod.LoadTree(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, f := range files {
		got[f.Path] = f.Data
	}
	if _, ok := got[kmod.IndexPath]; !ok {
		t.Errorf("no %s", kmod.IndexPath)
	}
	var release string
	for _, m := range tree.Modules() {
		if release = m.Info.Release(); release != "" {
			break
		}
	}
	for _, f := range tree.DepmodFiles() {
		p := path.Join("lib/modules", release, f.Path)
		if !bytes.Equal(got[p], f.Data) {
			t.Errorf("%s: %d bytes from the tar, %d from the tree on disk", p, len(got[p]), len(f.Data))
		}
	}
	if sym := got[path.Join("lib/modules", release, "modules.symbols")]; bytes.Count(sym, []byte("\n")) < 100 {
		t.Errorf("modules.symbols has %d lines", bytes.Count(sym, []byte("\n")))
	}
	if len(files) != 1+len(tree.DepmodFiles()) {
		t.Errorf("%d files, want the index and %d depmod files", len(files), len(tree.DepmodFiles()))
	}
}
