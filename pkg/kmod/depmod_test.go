package kmod

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// depmodTree is testTree's shape as modules with what their .modinfo and
// symbol table say, in a modules.order that is not path order.
func depmodTree() *Tree {
	mod := func(path string, info Info) *Module {
		return &Module{Name: NormalizeName(path), Path: path, Info: &info}
	}
	t := NewTree([]*Module{
		mod("kernel/net/netfilter/nft_compat.ko", Info{Depends: []string{"nf_tables", "x_tables"}, Aliases: []string{"nfnetlink-subsys-10", "nft-expr-match"}}),
		mod("kernel/net/netfilter/nf_tables.ko", Info{Depends: []string{"nfnetlink", "libcrc32c"}, Exports: []string{"nft_register_expr", "nft_unregister_expr"}}),
		mod("kernel/net/netfilter/nfnetlink.ko", Info{Exports: []string{"nfnetlink_send"}}),
		mod("kernel/net/netfilter/x_tables.ko", Info{Exports: []string{"xt_register_match"}}),
		mod("kernel/lib/libcrc32c.ko", Info{SoftPre: []string{"crc32c"}, Exports: []string{"crc32c"}}),
		mod("kernel/arch/x86/crypto/crc32c-intel.ko", Info{Aliases: []string{"crc32c", "crypto-crc32c", "cpu:type:x86,ven*fam*mod*:feature:*0094*"}}),
		mod("kernel/drivers/virtio/virtio_pci.ko", Info{Depends: []string{"virtio_pci_modern_dev"}, Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}}),
		mod("kernel/drivers/virtio/virtio_pci_modern_dev.ko", Info{}),
		mod("kernel/drivers/net/broken.ko", Info{Depends: []string{"missing", "ext4"}}),
	}, []string{"ext4", "crc32c_generic"})
	t.SetOrder([]string{
		"kernel/lib/libcrc32c.ko", "kernel/net/netfilter/nfnetlink.ko", "kernel/net/netfilter/nf_tables.ko",
		"kernel/net/netfilter/x_tables.ko", "kernel/net/netfilter/nft_compat.ko",
	})
	return t
}

func depmodFile(t *testing.T, files []File, name string) string {
	t.Helper()
	for _, f := range files {
		if f.Path == name {
			return string(f.Data)
		}
	}
	t.Fatalf("no %s among %d files", name, len(files))
	return ""
}

// The text files, in depmod's formats: modules.order first, then by path;
// each dependency line lists every module needed, the last needing none
// of the others, without built-in or missing ones.
func TestDepmodTextFiles(t *testing.T) {
	files := depmodTree().DepmodFiles()
	for name, want := range map[string]string{
		"modules.dep": `kernel/lib/libcrc32c.ko:
kernel/net/netfilter/nfnetlink.ko:
kernel/net/netfilter/nf_tables.ko: kernel/lib/libcrc32c.ko kernel/net/netfilter/nfnetlink.ko
kernel/net/netfilter/x_tables.ko:
kernel/net/netfilter/nft_compat.ko: kernel/net/netfilter/x_tables.ko kernel/net/netfilter/nf_tables.ko kernel/lib/libcrc32c.ko kernel/net/netfilter/nfnetlink.ko
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/net/broken.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
`,
		"modules.alias": `# Aliases extracted from modules themselves.
alias nfnetlink-subsys-10 nft_compat
alias nft-expr-match nft_compat
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
`,
		"modules.softdep": `# Soft dependencies extracted from modules themselves.
softdep libcrc32c pre: crc32c
`,
		"modules.symbols": `# Aliases for symbols, used by symbol_request().
alias symbol:crc32c libcrc32c
alias symbol:nfnetlink_send nfnetlink
alias symbol:nft_register_expr nf_tables
alias symbol:nft_unregister_expr nf_tables
alias symbol:xt_register_match x_tables
`,
	} {
		if got := depmodFile(t, files, name); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	// The same tree gives the same bytes.
	again := depmodTree().DepmodFiles()
	for i := range files {
		if string(files[i].Data) != string(again[i].Data) {
			t.Errorf("%s differs between two runs", files[i].Path)
		}
	}
}

func TestNormalizeAlias(t *testing.T) {
	for in, want := range map[string]string{
		"fs-fuse":                 "fs_fuse",
		"char-major-10-229":       "char_major_10_229",
		"pci:v*d*sv*sd*bc0[1-4]*": "pci:v*d*sv*sd*bc0[1-4]*",
		"a-[x-y]-b":               "a_[x-y]_b",
	} {
		if got, ok := normalizeAlias(in); !ok || got != want {
			t.Errorf("normalizeAlias(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"a]b", "a[bc"} {
		if _, ok := normalizeAlias(bad); ok {
			t.Errorf("normalizeAlias(%q) accepted", bad)
		}
	}
}

// kmodModprobe is the host's kmod modprobe, or a skip: the binary indexes
// are checked by the program that reads them.
func kmodModprobe(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/modprobe", "/sbin/modprobe"} {
		if out, err := exec.Command(p, "--version").Output(); err == nil && strings.HasPrefix(string(out), "kmod") {
			return p
		}
	}
	t.Skip("kmod's modprobe not installed (Debian package kmod; `make deps` installs it)")
	return ""
}

// writeTree writes files under root/lib/modules/release.
func writeTree(t *testing.T, root, release string, files []File) string {
	t.Helper()
	dir := filepath.Join(root, "lib/modules", release)
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// kmod's modprobe resolves names, aliases (wildcards and dashes included),
// symbols, softdeps and built-in modules through the files: -D prints
// what it would load, in order, without loading anything.
func TestDepmodFilesWithKmod(t *testing.T) {
	modprobe := kmodModprobe(t)
	root := t.TempDir()
	const release = "6.1.0-test"
	tree := depmodTree()
	files := tree.DepmodFiles()
	for _, m := range tree.Modules() {
		// kmod looks at the module files; it loads none here.
		files = append(files, File{Path: m.Path, Data: []byte("\x7fELF")})
	}
	dir := writeTree(t, root, release, files)
	// Empty config: no modprobe.d of the host may answer for the tree.
	conf := filepath.Join(root, "empty.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	probe := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(modprobe, append([]string{"-d", root, "-S", release, "-C", conf}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("modprobe %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.ReplaceAll(string(out), dir+"/", "")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-D", "nft_compat"}, "insmod kernel/net/netfilter/nfnetlink.ko \n" +
			"insmod kernel/arch/x86/crypto/crc32c-intel.ko \n" + // libcrc32c's softdep (modules.softdep), through the crc32c alias
			"insmod kernel/lib/libcrc32c.ko \n" +
			"insmod kernel/net/netfilter/nf_tables.ko \n" +
			"insmod kernel/net/netfilter/x_tables.ko \n" +
			"insmod kernel/net/netfilter/nft_compat.ko \n"},
		{[]string{"-D", "virtio-pci"}, "insmod kernel/drivers/virtio/virtio_pci_modern_dev.ko \ninsmod kernel/drivers/virtio/virtio_pci.ko \n"},
		{[]string{"-R", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}, "virtio_pci\n"},
		{[]string{"-R", "nft-expr-match"}, "nft_compat\n"},
		{[]string{"-R", "symbol:nft_register_expr"}, "nf_tables\n"},
		{[]string{"-D", "ext4"}, "builtin ext4\n"},
	} {
		if got := probe(tc.args...); got != tc.want {
			t.Errorf("modprobe %s:\n%s\nwant:\n%s", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	// -c dumps the alias and symbol indexes as kmod reads them.
	var dumped []string
	for _, l := range strings.Split(probe("-c"), "\n") {
		if strings.HasPrefix(l, "alias ") || strings.HasPrefix(l, "softdep ") {
			dumped = append(dumped, l)
		}
	}
	slices.Sort(dumped)
	want := []string{
		"alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel",
		"alias crc32c crc32c_intel",
		"alias crypto_crc32c crc32c_intel",
		"alias nfnetlink_subsys_10 nft_compat",
		"alias nft_expr_match nft_compat",
		"alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci",
		"alias symbol:crc32c libcrc32c",
		"alias symbol:nfnetlink_send nfnetlink",
		"alias symbol:nft_register_expr nf_tables",
		"alias symbol:nft_unregister_expr nf_tables",
		"alias symbol:xt_register_match x_tables",
		"softdep libcrc32c pre: crc32c",
	}
	if !slices.Equal(dumped, want) {
		t.Errorf("modprobe -c:\n%s\nwant:\n%s", strings.Join(dumped, "\n"), strings.Join(want, "\n"))
	}
}

// copyTree copies the module tree at src to root/lib/modules/release, and
// returns that directory.
func copyTree(t *testing.T, src, root, release string) string {
	t.Helper()
	dst := filepath.Join(root, "lib/modules", release)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// lines is the sorted non-comment lines of a file.
func lines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// The depmod files of the real lean tree (KMOD_TEST_TREE) say what the
// host's depmod says of the same tree, and kmod's modprobe resolves every
// module, alias and symbol the same through both.
func TestDepmodFilesMatchDepmod(t *testing.T) {
	modprobe := kmodModprobe(t)
	depmod := filepath.Join(filepath.Dir(modprobe), "depmod")
	tree := realTree(t)
	src := os.Getenv("KMOD_TEST_TREE")
	var release string
	for _, m := range tree.Modules() {
		if release = m.Info.Release(); release != "" {
			break
		}
	}
	conf := filepath.Join(t.TempDir(), "empty.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// Theirs: depmod run on a copy, which holds what the tree holds
	// (modules.order, modules.builtin) but no index yet.
	theirRoot := t.TempDir()
	theirs := copyTree(t, src, theirRoot, release)
	for _, f := range tree.DepmodFiles() {
		os.Remove(filepath.Join(theirs, f.Path))
	}
	if out, err := exec.Command(depmod, "-b", theirRoot, "-C", conf, release).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	// Ours, on another copy.
	ourRoot := t.TempDir()
	ours := copyTree(t, src, ourRoot, release)
	for _, f := range tree.DepmodFiles() {
		if err := os.WriteFile(filepath.Join(ours, f.Path), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, name := range []string{"modules.alias", "modules.symbols", "modules.softdep"} {
		if a, b := lines(t, filepath.Join(ours, name)), lines(t, filepath.Join(theirs, name)); !slices.Equal(a, b) {
			t.Errorf("%s differs from depmod's:\nours:\n%s\ndepmod's:\n%s", name, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
	// modules.dep: the same modules need the same others (depmod may list
	// them in another valid order); in ours, each needs none listed before it.
	deps := func(root string) map[string][]string {
		out := map[string][]string{}
		for _, l := range lines(t, filepath.Join(root, "modules.dep")) {
			m, rest, _ := strings.Cut(l, ":")
			out[m] = strings.Fields(rest)
		}
		return out
	}
	ourDeps, theirDeps := deps(ours), deps(theirs)
	if len(ourDeps) != len(theirDeps) || len(ourDeps) == 0 {
		t.Errorf("modules.dep has %d modules, depmod's %d", len(ourDeps), len(theirDeps))
	}
	for m, want := range theirDeps {
		got := ourDeps[m]
		if !sameSet(got, want) {
			t.Errorf("modules.dep: %s needs %q, depmod says %q", m, got, want)
		}
		for i, d := range got {
			for _, later := range got[:i] {
				if slices.Contains(ourDeps[d], later) {
					t.Errorf("modules.dep: %s: %s is listed after %s, which it needs", m, d, later)
				}
			}
		}
	}

	// kmod's modprobe through the .bin indexes: the same modules for every
	// module of the tree, and the same alias and symbol indexes.
	probe := func(root, dir string, args ...string) string {
		out, err := exec.Command(modprobe, append([]string{"-d", root, "-S", release, "-C", conf}, args...)...).CombinedOutput()
		if err != nil {
			t.Errorf("modprobe %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.ReplaceAll(string(out), dir+"/", "")
	}
	sortedLines := func(s string) []string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		slices.Sort(l)
		return l
	}
	for _, m := range tree.Modules() {
		a, b := probe(ourRoot, ours, "-D", m.Name), probe(theirRoot, theirs, "-D", m.Name)
		if !slices.Equal(sortedLines(a), sortedLines(b)) {
			t.Errorf("modprobe -D %s:\n%s\nwith depmod's files:\n%s", m.Name, a, b)
		}
	}
	for _, name := range []string{"ext4", "crc32c", "fs-overlay", "char-major-10-200", "symbol:tun_get_socket"} {
		a, b := probe(ourRoot, ours, "-D", name), probe(theirRoot, theirs, "-D", name)
		if a != b {
			t.Errorf("modprobe -D %s:\n%s\nwith depmod's files:\n%s", name, a, b)
		}
	}
	dump := func(root, dir string) []string {
		var out []string
		for _, l := range sortedLines(probe(root, dir, "-c")) {
			if strings.HasPrefix(l, "alias ") || strings.HasPrefix(l, "softdep ") {
				out = append(out, l)
			}
		}
		return out
	}
	if a, b := dump(ourRoot, ours), dump(theirRoot, theirs); !slices.Equal(a, b) || len(a) < 100 {
		t.Errorf("modprobe -c: %d lines, %d with depmod's files; they differ or are too few", len(a), len(b))
	}
}
