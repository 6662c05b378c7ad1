package kmod

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestMatchAlias(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		// Patterns as the Debian 6.1 modules declare them, against the
		// modaliases a QEMU q35 guest's devices report.
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d000029C0sv00001AF4sd00001100bc06sc00i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000001v00001AF4", false},
		{"virtio:d00000004v*", "virtio:d00000004v00001AF4", true},
		{"acpi*:LNXPWRBN:*", "acpi:LNXPWRBN:", true},
		{"acpi*:PNP0C0C:*", "acpi:LNXPWRBN:", false},
		{"input:b*v*p*e*-e*k*r*a*m*l*s*f*w*", "input:b0019v0000p0001e0000-e0,1,kramlsfw", true},
		{"input:b*v*p*e*-e*k*r*a*m*l*s*f*w*", "input:b0019v0000p0001e0000", false},
		// fnmatch corners.
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"x[0-9]y", "x5y", true},
		{"x[!0-9]y", "x5y", false},
		{"x[^0-9]y", "xay", true},
		{"x[]]y", "x]y", true},
		{"x[y", "x[y", true},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"*", "", true},
		{"", "a", false},
		{"a/*", "a/b/c", true},
		{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	} {
		if got := MatchAlias(c.pattern, c.s); got != c.want {
			t.Errorf("MatchAlias(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func testIndex() *Index {
	return &Index{Version: IndexVersion, Kernels: []KernelModules{{
		Release: "6.1.0-56-cloud-amd64",
		Builtin: []string{"crc32c_generic"},
		Modules: []IndexEntry{
			{Name: "virtio_pci", Path: "kernel/drivers/virtio/virtio_pci.ko", Depends: []string{"virtio_pci_modern_dev"},
				Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}},
			{Name: "virtio_pci_modern_dev", Path: "kernel/drivers/virtio/virtio_pci_modern_dev.ko"},
			{Name: "virtio_net", Path: "kernel/drivers/net/virtio_net.ko", Depends: []string{"net_failover"},
				Aliases: []string{"virtio:d00000001v*"}},
			{Name: "net_failover", Path: "kernel/drivers/net/net_failover.ko", Depends: []string{"failover"}},
			{Name: "failover", Path: "kernel/net/core/failover.ko"},
			{Name: "libcrc32c", Path: "kernel/lib/libcrc32c.ko", SoftPre: []string{"crc32c"}},
		},
	}}}
}

func TestIndexRoundTripAndLookup(t *testing.T) {
	ix := testIndex()
	var buf bytes.Buffer
	if err := WriteIndex(&buf, ix); err != nil {
		t.Fatal(err)
	}
	back, err := ReadIndex(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ix) {
		t.Fatalf("round trip:\n%s", buf.Bytes())
	}
	k, ok := back.Kernel("6.1.0-56-cloud-amd64")
	if !ok {
		t.Fatal("release missing")
	}
	if got := k.Lookup("virtio:d00000001v00001AF4"); !reflect.DeepEqual(got, []string{"virtio_net"}) {
		t.Errorf("Lookup virtio net = %q", got)
	}
	if got := k.Lookup("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"); !reflect.DeepEqual(got, []string{"virtio_pci"}) {
		t.Errorf("Lookup virtio pci = %q", got)
	}
	mods, err := k.Tree().Closure("virtio_net", "libcrc32c")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(mods), []string{"failover", "net_failover", "virtio_net", "libcrc32c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Closure = %q, want %q", got, want)
	}
	if _, err := ReadIndex(bytes.NewReader([]byte(`{"version":2}`))); err == nil {
		t.Error("version 2 accepted")
	}
}

// PID 1 imports this package: it must need nothing but the standard
// library.
func TestImportsOnlyStdlib(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for name, f := range p.Files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
					t.Errorf("%s imports %s: pkg/kmod must stay standard library only", name, path)
				}
			}
		}
	}
}
