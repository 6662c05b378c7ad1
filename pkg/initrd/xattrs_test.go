package initrd

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/xattrs"
)

// pingCap is the security.capability value `setcap cap_net_raw+ep` gives
// Debian's ping (and arping): revision 2 with the effective flag,
// CAP_NET_RAW (13) permitted.
const pingCap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// xattrHeader is a tar header with extended attributes as Docker and
// go-containerregistry write them.
func xattrHeader(name string, typ byte, attrs map[string]string) *tar.Header {
	h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o755, PAXRecords: map[string]string{}}
	for k, v := range attrs {
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h
}

func xattrLayer(t *testing.T, name string, hs ...*tar.Header) Layer {
	t.Helper()
	data := map[string][]byte{}
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
			data[h.Name] = []byte(h.Name)
		}
	}
	l, err := memoryLayer(name, hs, data)
	if err != nil {
		t.Fatal(err)
	}
	l.Image = strings.Fields(name)[0]
	return l
}

// unpackXattrs unpacks layers under prefixes and returns the archive, the
// manifest it holds (nil when none) and the warnings.
func unpackXattrs(t *testing.T, prefixes []string, layers ...Layer) (archive []byte, manifest []xattrs.Entry, warnings []string) {
	t.Helper()
	var buf bytes.Buffer
	a := NewArchive(&buf, 0)
	if err := UnpackShared(a, prefixes, layers, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_, data := readInitrd(t, None, buf.Bytes())
	name := path.Join(xattrs.Dir, xattrs.FileName(prefixes[0]))
	if m, ok := data[name]; ok {
		var err error
		if manifest, err = xattrs.Parse([]byte(m)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for n := range data {
		if strings.HasPrefix(n, xattrs.Dir+"/") && n != name {
			t.Errorf("unexpected manifest %s", n)
		}
	}
	return buf.Bytes(), manifest, a.XattrWarnings()
}

// entries renders a manifest as "path name=value" lines for comparison.
func entries(m []xattrs.Entry) []string {
	var out []string
	for _, e := range m {
		out = append(out, e.Path+" "+e.Name+"="+string(e.Value))
	}
	return out
}

func TestUnpackKeepsXattrsInAManifest(t *testing.T) {
	const root = "containers/onboot/000-net/rootfs"
	lower := xattrLayer(t, "debian layer 1",
		xattrHeader("usr/", tar.TypeDir, nil),
		xattrHeader("usr/bin/", tar.TypeDir, map[string]string{"trusted.dir": "d"}),
		xattrHeader("usr/bin/ping", tar.TypeReg, map[string]string{"security.capability": pingCap, "user.note": "n"}),
		xattrHeader("usr/bin/arping", tar.TypeReg, map[string]string{"security.capability": pingCap}),
		xattrHeader("usr/bin/gone", tar.TypeReg, map[string]string{"security.capability": pingCap}),
		xattrHeader("usr/lib/", tar.TypeDir, map[string]string{"security.selinux": "lib_t"}),
		xattrHeader("usr/lib/x", tar.TypeReg, map[string]string{"security.selinux": "x_t"}),
		xattrHeader("dev/", tar.TypeDir, nil),
		xattrHeader("dev/null", tar.TypeChar, map[string]string{"security.selinux": "null_t"}),
		xattrHeader("opt/", tar.TypeDir, nil),
		xattrHeader("opt/hidden", tar.TypeReg, map[string]string{"security.capability": pingCap}),
	)
	link := xattrHeader("usr/bin/ping4", tar.TypeLink, map[string]string{"security.capability": pingCap})
	link.Linkname = "usr/bin/ping"
	sym := xattrHeader("bin", tar.TypeSymlink, map[string]string{"security.selinux": "link_t"})
	sym.Linkname = "usr/bin"
	libarchive := xattrHeader("usr/bin/bsd", tar.TypeReg, nil)
	libarchive.PAXRecords["LIBARCHIVE.xattr.security.bsd%2Eattr"] = base64.StdEncoding.EncodeToString([]byte("\x00b"))
	upper := xattrLayer(t, "debian layer 2",
		// A new arping replaces the old one, attributes and all.
		xattrHeader("usr/bin/arping", tar.TypeReg, nil),
		xattrHeader("usr/bin/.wh.gone", tar.TypeReg, nil),
		xattrHeader("usr/.wh.lib", tar.TypeReg, nil),
		xattrHeader("opt/.wh..wh..opq", tar.TypeReg, nil),
		link, sym, libarchive,
	)
	_, m, warnings := unpackXattrs(t, []string{root}, lower, upper)
	want := []string{
		root + "/usr/bin trusted.dir=d",
		root + "/usr/bin/ping security.capability=" + pingCap,
		root + "/usr/bin/ping user.note=n",
		root + "/dev/null security.selinux=null_t",
		root + "/bin security.selinux=link_t",
		root + "/usr/bin/bsd security.bsd.attr=\x00b",
	}
	if got := entries(m); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest:\n got %q\nwant %q", got, want)
	}
	wantWarn := []string{`debian: extended attributes a tmpfs root holds only from Linux 6.6 on (user.*), set at boot where the kernel can (PID 1 logs each it cannot): "usr/bin/ping" (user.note)`}
	if !reflect.DeepEqual(warnings, wantWarn) {
		t.Errorf("warnings:\n got %q\nwant %q", warnings, wantWarn)
	}
}

func TestUnpackWithoutXattrsWritesNoManifest(t *testing.T) {
	a, m, w := unpackXattrs(t, []string{"r"}, xattrLayer(t, "plain", xattrHeader("bin/", tar.TypeDir, nil), xattrHeader("bin/sh", tar.TypeReg, nil)))
	if m != nil || w != nil || bytes.Contains(a, []byte("xattrs")) {
		t.Errorf("manifest %q, warnings %q", m, w)
	}
}

// Bundles sharing an image's files share inodes: a regular file's
// attributes are listed once, what is written per bundle is listed per
// bundle.
func TestSharedUnpackListsEachInodeOnce(t *testing.T) {
	sym := xattrHeader("sbin", tar.TypeSymlink, map[string]string{"security.selinux": "l"})
	sym.Linkname = "bin"
	l := xattrLayer(t, "img",
		xattrHeader("bin/", tar.TypeDir, map[string]string{"security.selinux": "d"}),
		xattrHeader("bin/ping", tar.TypeReg, map[string]string{"security.capability": pingCap}),
		sym)
	_, m, _ := unpackXattrs(t, []string{"a/rootfs", "b/rootfs"}, l)
	want := []string{
		"a/rootfs/bin security.selinux=d",
		"b/rootfs/bin security.selinux=d",
		"a/rootfs/bin/ping security.capability=" + pingCap,
		"a/rootfs/sbin security.selinux=l",
		"b/rootfs/sbin security.selinux=l",
	}
	if got := entries(m); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest:\n got %q\nwant %q", got, want)
	}
}

func TestUnpackXattrsAreReproducible(t *testing.T) {
	attrs := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		attrs["security."+n] = n
		attrs["user."+n] = n
	}
	var first []byte
	for i := 0; i < 10; i++ {
		l := xattrLayer(t, "img", xattrHeader("x/", tar.TypeDir, attrs), xattrHeader("x/y", tar.TypeReg, attrs), xattrHeader("z", tar.TypeReg, attrs))
		a, m, _ := unpackXattrs(t, []string{""}, l)
		if len(m) != 48 {
			t.Fatalf("%d entries, want 48", len(m))
		}
		if first == nil {
			first = a
		} else if !bytes.Equal(a, first) {
			t.Fatal("two unpacks of the same layer differ")
		}
	}
}

func TestUnpackXattrsOddNames(t *testing.T) {
	bad := xattrHeader("f", tar.TypeReg, map[string]string{"com.apple.quarantine": "q", "security.ok": "k", "trusted.overlay.opaque": "y"})
	_, m, w := unpackXattrs(t, []string{"r"}, xattrLayer(t, "mac", bad))
	if got := entries(m); !reflect.DeepEqual(got, []string{"r/f security.ok=k"}) {
		t.Errorf("manifest %q", got)
	}
	if want := []string{`mac: extended attributes left out (not settable on Linux, or overlayfs's own): "f" (com.apple.quarantine,trusted.overlay.opaque)`}; !reflect.DeepEqual(w, want) {
		t.Errorf("warnings %q", w)
	}

	broken := xattrHeader("g", tar.TypeReg, nil)
	broken.PAXRecords["LIBARCHIVE.xattr.user.x"] = "not base64!"
	var buf bytes.Buffer
	err := Unpack(NewArchive(&buf, 0), "r", []Layer{xattrLayer(t, "bsd layer 1", broken)})
	if err == nil || !strings.Contains(err.Error(), "bsd layer 1: g: extended attribute user.x: value is not base64") {
		t.Errorf("got %v", err)
	}
}
