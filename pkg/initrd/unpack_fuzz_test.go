package initrd

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/cpio"
	"github.com/keel-os/keel/pkg/xattrs"
)

// FuzzUnpack feeds arbitrary bytes to Unpack as two layers (the input, and
// the input again on top). Whatever the bytes, Unpack must not panic, and
// every entry it writes must stay under its prefix: no "..", nothing
// absolute, and no path through a symlink it wrote (the kernel would
// follow it when unpacking).
func FuzzUnpack(f *testing.F) {
	seed := func(entries ...tarEntry) {
		rc, _ := tarLayer(f, "seed", entries...).Open()
		b, _ := io.ReadAll(rc)
		f.Add(b)
	}
	seed(tarEntry{"etc/", ""}, tarEntry{"etc/passwd", "root:x:0:0"}, tarEntry{"bin/sh=>etc/passwd", ""})
	seed(tarEntry{"lib->usr/lib", ""}, tarEntry{"usr/lib/", ""}, tarEntry{"lib/x", "x"}, tarEntry{"a/.wh..wh..opq", ""})
	seed(tarEntry{"up->..", ""}, tarEntry{"up/escape", "x"}, tarEntry{"abs->/etc", ""}, tarEntry{"abs/shadow", "x"})
	seed(tarEntry{"d/", ""}, tarEntry{"d/f", "1"}, tarEntry{"d/.wh.f", ""}, tarEntry{"loop->loop", ""}, tarEntry{"loop/x", ""})
	var dev bytes.Buffer
	tw := tar.NewWriter(&dev)
	tw.WriteHeader(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3})
	tw.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Size: 1 << 20, PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "v"}})
	f.Add(dev.Bytes())
	var attrs bytes.Buffer
	tw = tar.NewWriter(&attrs)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.trusted.d": "d"}})
	tw.WriteHeader(&tar.Header{Name: "bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.a": "\n"}})
	tw.WriteHeader(&tar.Header{Name: "sbin/ping", Typeflag: tar.TypeLink, Linkname: "bin/ping", PAXRecords: map[string]string{"LIBARCHIVE.xattr.user.b": "Yg=="}})
	tw.Close()
	f.Add(attrs.Bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		var buf bytes.Buffer
		a := NewArchive(&buf, 0)
		err := Unpack(a, "p", []Layer{{Name: "lower", Open: open}, {Name: "upper", Open: open}})
		if err != nil {
			return
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		cr := cpio.NewReader(&buf)
		manifest := path.Join(xattrs.Dir, xattrs.FileName("p"))
		symlinks := map[string]bool{}
		for {
			h, err := cr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading back the archive: %v", err)
			}
			n := h.Name
			if n == manifest {
				// The xattrs manifest is the one entry outside the
				// prefix; what it names must be inside it.
				b, _ := io.ReadAll(cr)
				es, err := xattrs.Parse(b)
				if err != nil {
					t.Fatalf("the manifest does not parse: %v", err)
				}
				for _, e := range es {
					if !strings.HasPrefix(e.Path, "p/") {
						t.Fatalf("the manifest names %q, outside the prefix", e.Path)
					}
				}
				continue
			}
			if n != "p" && !strings.HasPrefix(n, "p/") {
				t.Fatalf("%q is outside the prefix", n)
			}
			for _, c := range strings.Split(n, "/") {
				if c == ".." || c == "." || c == "" {
					t.Fatalf("%q has a %q component", n, c)
				}
			}
			for d := parent(n); d != ""; d = parent(d) {
				if symlinks[d] {
					t.Fatalf("%q goes through the symlink %q", n, d)
				}
			}
			if h.Mode&cpio.ModeType == cpio.ModeSymlink {
				symlinks[n] = true
			}
		}
	})
}
