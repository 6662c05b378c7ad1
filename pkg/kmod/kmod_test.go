package kmod

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// fakeModule builds the smallest ELF relocatable object debug/elf accepts
// with a .modinfo section holding fields (key=value each), as a .ko has.
func fakeModule(t *testing.T, fields ...string) []byte {
	t.Helper()
	var modinfo []byte
	for _, f := range fields {
		modinfo = append(modinfo, f...)
		// Real sections pad between strings; the parser must skip that.
		modinfo = append(modinfo, 0, 0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdrSize, shSize = 64, 64
	modinfoOff := uint64(hdrSize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shOff := shstrOff + uint64(len(shstrtab))

	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: hdrSize, Shentsize: shSize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	for _, v := range []any{hdr, modinfo, shstrtab, sections} {
		if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestReadInfo(t *testing.T) {
	ko := fakeModule(t,
		"alias=crypto-crc32c-intel", "alias=crc32c", "license=GPL",
		"description=has = signs", "depends=a,b-c", "softdep=pre: x post: y z",
		"name=crc32c_intel", "vermagic=6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ")
	info, err := ReadInfo(bytes.NewReader(ko))
	if err != nil {
		t.Fatal(err)
	}
	want := &Info{
		Name: "crc32c_intel", Depends: []string{"a", "b_c"},
		SoftPre: []string{"x"}, SoftPost: []string{"y", "z"},
		Aliases:  []string{"crypto-crc32c-intel", "crc32c"},
		Vermagic: "6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions", License: "GPL",
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("got %+v\nwant %+v", info, want)
	}
	if r := info.Release(); r != "6.1.0-56-cloud-amd64" {
		t.Errorf("Release() = %q", r)
	}
}

func TestReadInfoEmptyDepends(t *testing.T) {
	info, err := ReadInfo(bytes.NewReader(fakeModule(t, "depends=", "name=overlay")))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Depends) != 0 {
		t.Errorf("Depends = %q, want none", info.Depends)
	}
}

func TestReadInfoNotAModule(t *testing.T) {
	// An ELF file without .modinfo: rename the section.
	ko := bytes.Replace(fakeModule(t, "name=x"), []byte(".modinfo"), []byte(".comment"), 1)
	if _, err := ReadInfo(bytes.NewReader(ko)); !errors.Is(err, ErrNoModinfo) {
		t.Errorf("err = %v, want ErrNoModinfo", err)
	}
	if _, err := ReadInfo(strings.NewReader("not elf at all")); err == nil {
		t.Error("no error for a non-ELF file")
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/arch/x86/crypto/crc32c-intel.ko": "crc32c_intel",
		"virtio-rng":                             "virtio_rng",
		"nf_tables.ko.xz":                        "nf_tables",
		"overlay":                                "overlay",
	} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// testTree is a small module tree shaped like the real one: nft_compat
// needs nf_tables, which needs nfnetlink and libcrc32c, which softdeps on
// the crc32c alias; ext4 is built in.
func testTree(t *testing.T) fstest.MapFS {
	ko := func(fields ...string) *fstest.MapFile { return &fstest.MapFile{Data: fakeModule(t, fields...)} }
	return fstest.MapFS{
		"modules.builtin":                                {Data: []byte("kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c_generic.ko\n")},
		"kernel/net/netfilter/nft_compat.ko":             ko("name=nft_compat", "depends=nf_tables,x_tables"),
		"kernel/net/netfilter/nf_tables.ko":              ko("name=nf_tables", "depends=nfnetlink,libcrc32c"),
		"kernel/net/netfilter/nfnetlink.ko":              ko("name=nfnetlink", "depends="),
		"kernel/net/netfilter/x_tables.ko":               ko("name=x_tables", "depends="),
		"kernel/lib/libcrc32c.ko":                        ko("name=libcrc32c", "depends=", "softdep=pre: crc32c"),
		"kernel/arch/x86/crypto/crc32c-intel.ko":         ko("name=crc32c_intel", "depends=", "alias=crc32c", "alias=cpu:type:x86,ven*"),
		"kernel/drivers/net/broken.ko":                   ko("name=broken", "depends=missing"),
		"kernel/drivers/virtio/virtio_pci.ko":            ko("name=virtio_pci", "depends=virtio_pci_modern_dev", "alias=pci:v00001AF4d*"),
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": ko("name=virtio_pci_modern_dev", "depends="),
	}
}

func names(mods []*Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestClosure(t *testing.T) {
	tree, err := LoadTree(testTree(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Closure("nft_compat", "ext4", "virtio-pci", "nf_tables")
	if err != nil {
		t.Fatal(err)
	}
	// Dependencies first, each module once, built-ins left out, the crc32c
	// softdep resolved through its alias.
	want := []string{"nfnetlink", "crc32c_intel", "libcrc32c", "nf_tables", "x_tables", "nft_compat", "virtio_pci_modern_dev", "virtio_pci"}
	if !reflect.DeepEqual(names(got), want) {
		t.Errorf("Closure = %q\nwant      %q", names(got), want)
	}
	if m, ok := tree.Module("crc32c-intel"); !ok || m.Path != "kernel/arch/x86/crypto/crc32c-intel.ko" {
		t.Errorf("Module(crc32c-intel) = %+v, %v", m, ok)
	}
	if !tree.IsBuiltin("crc32c-generic") {
		t.Error("crc32c_generic not built in")
	}
}

func TestClosureErrors(t *testing.T) {
	tree, err := LoadTree(testTree(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Closure("nope"); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("unknown module: err = %v", err)
	}
	_, err = tree.Closure("broken")
	if !errors.Is(err, ErrUnknownModule) || !strings.Contains(err.Error(), "broken depends on missing") {
		t.Errorf("missing dependency: err = %v", err)
	}
}

func TestLoadTreeFromDisk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kernel", "fs", "overlay.ko")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	ko := fakeModule(t, "name=overlay", "depends=")
	if err := os.WriteFile(p, ko, 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := LoadTree(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := tree.Module("overlay")
	if !ok || m.Size != int64(len(ko)) {
		t.Fatalf("Module(overlay) = %+v, %v", m, ok)
	}
	if _, err := ReadInfoFile(p); err != nil {
		t.Error(err)
	}
}

// realDepends is what the .modinfo of Debian's 6.1 cloud kernel
// (linux-image-6.1.0-56-cloud-amd64) declares, as `modinfo -F depends`
// prints it, in its order.
var realDepends = map[string][]string{
	"virtio_net":                 {"virtio_ring", "virtio", "net_failover"},
	"net_failover":               {"failover"},
	"failover":                   nil,
	"virtio":                     {"virtio_ring"},
	"virtio_ring":                nil,
	"virtio_pci":                 {"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"},
	"overlay":                    nil,
	"button":                     nil,
	"evdev":                      nil,
	"bridge":                     {"llc", "stp"},
	"stp":                        {"llc"},
	"br_netfilter":               {"bridge"},
	"nf_conntrack":               {"nf_defrag_ipv4", "nf_defrag_ipv6", "libcrc32c"},
	"nf_nat":                     {"nf_conntrack", "libcrc32c"},
	"nft_compat":                 {"nf_tables", "nfnetlink", "x_tables"},
	"nf_tables":                  {"nfnetlink", "libcrc32c"},
	"libcrc32c":                  nil,
	"crc32c_intel":               nil,
	"vsock":                      nil,
	"vmw_vsock_virtio_transport": {"virtio", "vmw_vsock_virtio_transport_common", "virtio_ring", "vsock"},
}

// realTree loads the module tree KMOD_TEST_TREE names. It skips when the
// variable is unset (`make test-go` sets it to the tree of
// keel/kernel:$(KERNEL_ABI)) and fails when it names no tree.
func realTree(t *testing.T) *Tree {
	t.Helper()
	dir := os.Getenv("KMOD_TEST_TREE")
	if dir == "" {
		t.Skip("KMOD_TEST_TREE not set (make test-go sets it)")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("KMOD_TEST_TREE=%s: not a directory: %v", dir, err)
	}
	tree, err := LoadTree(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Modules()) == 0 {
		t.Fatalf("KMOD_TEST_TREE=%s: no modules", dir)
	}
	return tree
}

// checkOrder fails unless every module of mods comes after the modules it
// depends on, each of them in mods or built in.
func checkOrder(t *testing.T, tree *Tree, mods []*Module) {
	t.Helper()
	at := map[string]int{}
	for i, m := range mods {
		at[m.Name] = i
	}
	for i, m := range mods {
		for _, d := range m.Info.Depends {
			j, ok := at[NormalizeName(d)]
			switch {
			case !ok && !tree.IsBuiltin(d):
				t.Errorf("%s depends on %s, which is not in the closure", m.Name, d)
			case ok && j > i:
				t.Errorf("%s comes before its dependency %s: %q", m.Name, d, names(mods))
			}
		}
	}
}

// TestRealModules reads a real module tree, the one of the lean kernel
// image (KMOD_TEST_TREE=.../lib/modules/6.1.0-56-cloud-amd64), and checks
// what it says against the kernel's own .modinfo.
func TestRealModules(t *testing.T) {
	tree := realTree(t)
	for name, want := range realDepends {
		m, ok := tree.Module(name)
		if !ok {
			t.Errorf("module %s not in the tree", name)
			continue
		}
		if !slices.Equal(m.Info.Depends, want) {
			t.Errorf("%s depends on %q, want %q", name, m.Info.Depends, want)
		}
	}
	if m, ok := tree.Module("libcrc32c"); ok && !slices.Equal(m.Info.SoftPre, []string{"crc32c"}) {
		t.Errorf("libcrc32c softdep pre: %q, want [crc32c]", m.Info.SoftPre)
	}
	for _, b := range []string{"ext4", "crc32c_generic"} {
		if !tree.IsBuiltin(b) {
			t.Errorf("%s is not built in", b)
		}
	}

	// Every dependency a module names is in the tree or built in, and the
	// tree is of one release.
	release := ""
	for _, m := range tree.Modules() {
		if m.Info.Name != "" && m.Info.Name != m.Name {
			t.Errorf("%s: .modinfo name %q", m.Path, m.Info.Name)
		}
		if r := m.Info.Release(); release == "" {
			release = r
		} else if r != release {
			t.Errorf("%s built for %q, others for %q", m.Path, r, release)
		}
		for _, d := range m.Info.Depends {
			if _, ok := tree.Module(d); !ok && !tree.IsBuiltin(d) {
				t.Errorf("%s depends on %s, which is neither in the tree nor built in", m.Name, d)
			}
		}
	}

	for _, tc := range []struct {
		names []string
		want  []string // the closure, as a set
	}{
		{[]string{"virtio_net"}, []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}},
		{[]string{"overlay"}, []string{"overlay"}},
		{[]string{"button"}, []string{"button"}},
		{[]string{"evdev"}, []string{"evdev"}},
		{[]string{"ext4"}, nil},
		{[]string{"br_netfilter"}, []string{"llc", "stp", "bridge", "br_netfilter"}},
		// libcrc32c's softdep on crc32c brings the one crc32c module
		// that is not built in.
		{[]string{"nf_conntrack"}, []string{"nf_defrag_ipv4", "nf_defrag_ipv6", "crc32c_intel", "libcrc32c", "nf_conntrack"}},
	} {
		mods, err := tree.Closure(tc.names...)
		if err != nil {
			t.Errorf("Closure(%q): %v", tc.names, err)
			continue
		}
		got := names(mods)
		if !sameSet(got, tc.want) {
			t.Errorf("Closure(%q) = %q, want %q in some order", tc.names, got, tc.want)
		}
		checkOrder(t, tree, mods)
	}

	// The lean set's closure resolves, has each module once, and is
	// closed under dependencies, each after what it needs.
	lean, err := tree.Closure(LeanModules...)
	if err != nil {
		t.Fatalf("closure of the lean set: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range lean {
		if seen[m.Name] {
			t.Errorf("%s twice in the closure", m.Name)
		}
		seen[m.Name] = true
	}
	checkOrder(t, tree, lean)
	for _, n := range []string{"virtio_net", "net_failover", "failover", "overlay", "button", "evdev", "crc32c_intel"} {
		if !seen[n] {
			t.Errorf("%s not in the closure of the lean set", n)
		}
	}
	t.Logf("%s: %d modules in tree; lean closure %d: %q", release, len(tree.Modules()), len(lean), names(lean))
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && reflect.DeepEqual(sorted(a), sorted(b))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}
