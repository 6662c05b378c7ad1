package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fixtureTree builds the same small tree from files on disk each time,
// adding entries in a different order each call to show order does not
// matter.
func fixtureTree(t *testing.T, dir string, reverse bool) *tree {
	t.Helper()
	steps := []func(*tree) error{
		func(tr *tree) error { return tr.file("usr/bin/tool", 0o755, filepath.Join(dir, "tool")) },
		func(tr *tree) error { return tr.file("init", 0o755, filepath.Join(dir, "init")) },
		func(tr *tree) error { return tr.hardlink("sbin/init", "/init") },
		func(tr *tree) error { return tr.symlink("bin/sh", "/bin/busybox") },
		func(tr *tree) error { return tr.dir("tmp", 0o1777) },
		func(tr *tree) error { return tr.data("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")) },
	}
	tr := newTree()
	for i := range steps {
		step := steps[i]
		if reverse {
			step = steps[len(steps)-1-i]
		}
		if err := step(tr); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func writeFixtures(t *testing.T) string {
	dir := t.TempDir()
	for name, data := range map[string]string{"tool": "tool binary", "init": "init binary"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		// Times and modes on disk must not reach the layer.
		if err := os.Chtimes(p, time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLayerReproducible(t *testing.T) {
	fixtures := writeFixtures(t)
	epoch := time.Unix(1700000000, 0).UTC()
	var digests []v1.Hash
	for i, reverse := range []bool{false, true} {
		layer, _, err := fixtureTree(t, fixtures, reverse).writeLayer(filepath.Join(t.TempDir(), "layer.tar.gz"), epoch)
		if err != nil {
			t.Fatal(err)
		}
		img, err := newImage(layer, v1.Config{Cmd: []string{"/bin/sh"}}, epoch, "test")
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		if i == 0 {
			// Let the clock move: nothing may depend on it.
			time.Sleep(1100 * time.Millisecond)
			os.Chtimes(filepath.Join(fixtures, "tool"), time.Now(), time.Now())
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("same inputs, different image digests: %s, %s", digests[0], digests[1])
	}
}

func TestLayerTarContents(t *testing.T) {
	epoch := time.Unix(42, 0).UTC()
	var buf bytes.Buffer
	if _, err := fixtureTree(t, writeFixtures(t), false).writeTar(&buf, epoch); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(epoch) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		e := hdr.Name
		switch hdr.Typeflag {
		case tar.TypeLink:
			e += " link " + hdr.Linkname
		case tar.TypeSymlink:
			e += " -> " + hdr.Linkname
		}
		got = append(got, e)
		if hdr.Name == "tmp/" && hdr.Mode != 0o1777 {
			t.Errorf("tmp mode %o", hdr.Mode)
		}
		if hdr.Name == "sbin/init" && hdr.Mode != 0o755 {
			t.Errorf("hard link mode %o, want its target's 755", hdr.Mode)
		}
	}
	want := []string{
		"bin/", "bin/sh -> /bin/busybox", "etc/", "etc/passwd", "init",
		"sbin/", "sbin/init link init", "tmp/", "usr/", "usr/bin/", "usr/bin/tool",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tar entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTreeRejects(t *testing.T) {
	tr := newTree()
	if err := tr.data("a", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.data("/a", 0o644, nil); err == nil {
		t.Error("duplicate entry accepted")
	}
	if err := tr.data("a/b", 0o644, nil); err == nil {
		t.Error("file under a file accepted")
	}
	if err := tr.data("../../etc/x", 0o644, nil); err != nil || !tr.has("etc/x") {
		t.Errorf("a path climbing out is not confined to the layer: %v", err)
	}
	// A hard link to a file sorting after it cannot be extracted.
	if err := tr.hardlink("0link", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.writeTar(io.Discard, time.Unix(0, 0)); err == nil {
		t.Error("hard link before its target accepted")
	}
}

func TestBusyboxApplets(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(bin, []byte("bb"), 0o755)
	bb := &busybox{Path: bin, Applets: []string{"bin/sh", "linuxrc", "sbin/init", "usr/bin/awk"}}
	tr := newTree()
	if err := tr.data("sbin/init", 0o755, []byte("keel")); err != nil {
		t.Fatal(err)
	}
	if err := bb.addTo(tr, "linuxrc"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"bin/busybox": true, "bin/sh": true, "usr/bin/awk": true, "linuxrc": false} {
		if tr.has(name) != want {
			t.Errorf("has(%s) = %v, want %v", name, !want, want)
		}
	}
	if e := tr.entries["sbin/init"]; e.hdr.Typeflag != tar.TypeReg {
		t.Error("busybox applet replaced keel's sbin/init")
	}
	if e := tr.entries["bin/sh"]; e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "/bin/busybox" {
		t.Errorf("bin/sh = %+v", e.hdr)
	}
}
