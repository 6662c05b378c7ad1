package initrd

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/testenv"
)

// cpioTool runs the system cpio with stdin from archive, in dir, to check
// what the kernel would unpack with a second implementation.
func cpioTool(t *testing.T, archive []byte, dir string, args ...string) string {
	t.Helper()
	testenv.Tool(t, "cpio", "cpio")
	cmd := exec.Command("cpio", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(archive)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// tarEntry is a compact tar header for tests: "name", "dir/", "link->target"
// (symlink) or "name=>target" (hard link); data is a regular file's.
type tarEntry struct {
	spec string
	data string
}

func tarLayer(t testing.TB, name string, entries ...tarEntry) Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.spec, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX}
		switch {
		case strings.HasSuffix(e.spec, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case strings.Contains(e.spec, "=>"):
			h.Name, h.Linkname, _ = strings.Cut(e.spec, "=>")
			h.Typeflag = tar.TypeLink
		case strings.Contains(e.spec, "->"):
			h.Name, h.Linkname, _ = strings.Cut(e.spec, "->")
			h.Typeflag, h.Mode = tar.TypeSymlink, 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	return Layer{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func unpackToArchive(t *testing.T, prefix string, layers ...Layer) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	a := NewArchive(&buf, 0)
	if err := Unpack(a, prefix, layers); err != nil {
		return nil, err
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), nil
}

func listing(t *testing.T, archive []byte) string {
	t.Helper()
	return strings.Join(strings.Fields(cpioTool(t, archive, t.TempDir(), "-t", "--quiet")), "\n")
}

func extract(t *testing.T, archive []byte) string {
	t.Helper()
	dir := t.TempDir()
	cpioTool(t, archive, dir, "-idm", "--quiet", "--no-absolute-filenames")
	return dir
}

func TestUnpackWhiteouts(t *testing.T) {
	archive, err := unpackToArchive(t, "containers/onboot/000-x/rootfs",
		tarLayer(t, "l1", tarEntry{"a/", ""}, tarEntry{"a/x", "x"}, tarEntry{"a/y", "y1"}, tarEntry{"b/", ""}, tarEntry{"b/z", "z"},
			tarEntry{"d/", ""}, tarEntry{"d/old", "old"}, tarEntry{"e/", ""}, tarEntry{"e/old", "old"},
			tarEntry{"implied/junk", "junk"}, tarEntry{"b2/", ""}, tarEntry{"b2/stale", "s"}),
		tarLayer(t, "l2", tarEntry{"a/.wh.x", ""}, tarEntry{".wh.b", ""}, tarEntry{"a/y", "y2"},
			tarEntry{"d/.wh..wh..opq", ""}, tarEntry{"d/new", "new"},
			// an opaque marker hides lower layers only, wherever it sits in its own tar
			tarEntry{"e/new", "new"}, tarEntry{"e/.wh..wh..opq", ""},
			// a directory only implied by a file outlives the file
			tarEntry{"implied/.wh.junk", ""},
			// deleted and made anew in one layer: nothing of the old one stays
			tarEntry{"b2/", ""}, tarEntry{"b2/fresh", "f"}, tarEntry{".wh.b2", ""}),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"containers", "containers/onboot", "containers/onboot/000-x", "containers/onboot/000-x/rootfs",
		// directories first, sorted
		"containers/onboot/000-x/rootfs/a", "containers/onboot/000-x/rootfs/b2", "containers/onboot/000-x/rootfs/d",
		"containers/onboot/000-x/rootfs/e", "containers/onboot/000-x/rootfs/implied",
		// then files in layer order
		"containers/onboot/000-x/rootfs/a/y", "containers/onboot/000-x/rootfs/d/new", "containers/onboot/000-x/rootfs/e/new",
		"containers/onboot/000-x/rootfs/b2/fresh",
	}, "\n")
	if got := listing(t, archive); got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	dir := extract(t, archive)
	if b, _ := os.ReadFile(filepath.Join(dir, "containers/onboot/000-x/rootfs/a/y")); string(b) != "y2" {
		t.Errorf("a/y = %q, want the upper layer's", b)
	}
}

func TestUnpackLinksAndParents(t *testing.T) {
	long := strings.Repeat("very-long-directory/", 7) + "file-with-a-long-name"
	archive, err := unpackToArchive(t, "",
		tarLayer(t, "l1",
			tarEntry{"./bin/busybox", "BUSYBOX"},
			tarEntry{"bin/sh=>bin/busybox", ""},
			tarEntry{"bin/ls->busybox", ""},
			tarEntry{"/usr/abs", "abs"},
			tarEntry{long, "deep"},
			tarEntry{"gone", "data of gone"},
		),
		tarLayer(t, "l2",
			tarEntry{"bin/cat=>bin/sh", ""}, // a link to a link of a lower layer
			tarEntry{"keep=>gone", ""},
			tarEntry{".wh.gone", ""}, // the link outlives the name that brought the data
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := listing(t, archive)
	for _, name := range []string{"bin", "usr", "usr/abs", long, "keep", "bin/cat"} {
		if !strings.Contains("\n"+got+"\n", "\n"+name+"\n") {
			t.Errorf("%s missing from:\n%s", name, got)
		}
	}
	if strings.Contains(got, "gone") {
		t.Errorf("whited-out name listed:\n%s", got)
	}
	if strings.Index(got, "very-long-directory\n") > strings.Index(got, long) {
		t.Errorf("a parent directory comes after its child:\n%s", got)
	}
	dir := extract(t, archive)
	stat := func(name string) os.FileInfo {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if !os.SameFile(stat("bin/busybox"), stat("bin/sh")) || !os.SameFile(stat("bin/sh"), stat("bin/cat")) {
		t.Error("bin/busybox, bin/sh and bin/cat are not one inode")
	}
	for name, want := range map[string]string{"bin/cat": "BUSYBOX", "keep": "data of gone", long: "deep"} {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dir, "bin/ls")); target != "busybox" {
		t.Errorf("bin/ls -> %q", target)
	}
}

func TestUnpackRefusesHostileEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"dotdot", []tarEntry{{"../etc/passwd", "x"}}, `bad: ../etc/passwd: path with ".." refused`},
		{"inner dotdot", []tarEntry{{"a/../../x", "x"}}, `bad: a/../../x: path with ".." refused`},
		{"hard link out", []tarEntry{{"x=>../../etc/shadow", ""}}, `bad: x: hard link to "../../etc/shadow" leaves the image`},
		{"hard link to nothing", []tarEntry{{"x=>etc/shadow", ""}}, `bad: x: hard link to "etc/shadow", which is not a file of the image`},
		{"symlink loop", []tarEntry{{"etc->/etc", ""}, {"etc/passwd", "root::0:0"}}, `bad: etc/passwd: too many levels of symbolic links at etc`},
		{"below a file", []tarEntry{{"f", "data"}, {"f/x", "x"}}, `bad: f/x: path goes through f, which is not a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unpackToArchive(t, "p", tarLayer(t, "bad", tc.entries...))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestUnpackResolvesSymlinkedParentsInside(t *testing.T) {
	archive, err := unpackToArchive(t, "root",
		tarLayer(t, "l1", tarEntry{"usr/lib/", ""}, tarEntry{"lib->usr/lib", ""}, tarEntry{"up->../../..", ""}, tarEntry{"abs->/usr", ""}),
		tarLayer(t, "l2", tarEntry{"lib/modules/6.1/virtio.ko", "ko"}, tarEntry{"up/etc/escaped", "x"}, tarEntry{"abs/lib/libc.so", "libc"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := listing(t, archive)
	for _, want := range []string{"root/usr/lib/modules/6.1/virtio.ko", "root/etc/escaped", "root/usr/lib/libc.so", "root/lib", "root/up"} {
		if !strings.Contains("\n"+got+"\n", "\n"+want+"\n") {
			t.Errorf("%s missing from:\n%s", want, got)
		}
	}
	for _, through := range []string{"root/lib/", "root/up/", "root/abs/"} {
		if strings.Contains(got, through) {
			t.Errorf("an entry is written through the symlink %s:\n%s", through, got)
		}
	}
}

// A layer made by `git archive` starts with a PAX global header (type 'g',
// carrying the commit id). It names no file: it is skipped, and what
// follows is unpacked as usual.
func TestUnpackSkipsPAXGlobalHeader(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hs := []*tar.Header{
		{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "0123456789abcdef"}},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
	}
	for _, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(tw, "keel\n"); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l := Layer{Name: "git-archive", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	archive, err := unpackToArchive(t, "", l)
	if err != nil {
		t.Fatalf("unpack a layer with a PAX global header: %v", err)
	}
	if got, want := listing(t, archive), "etc\netc/hostname"; got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(extract(t, archive), "etc/hostname")); err != nil || string(got) != "keel\n" {
		t.Errorf("etc/hostname = %q, %v; want \"keel\\n\"", got, err)
	}
}

// /init is the first file of the initrd's root, whatever the layers' order,
// with its hard links after it: a VM too small for the whole initrd gets
// all of PID 1 or nothing to run (see copyFirst). Below the root, a file
// named init keeps its place.
func TestUnpackWritesInitFirst(t *testing.T) {
	layers := []Layer{
		tarLayer(t, "busybox", tarEntry{"bin/", ""}, tarEntry{"bin/busybox", "bb"}, tarEntry{"bin/sh->busybox", ""}),
		tarLayer(t, "keel-init", tarEntry{"etc/", ""}, tarEntry{"etc/motd", "hi"}, tarEntry{"init", "pid1"},
			tarEntry{"usr/bin/ctr=>init", ""}),
	}
	archive, err := unpackToArchive(t, "", layers...)
	if err != nil {
		t.Fatal(err)
	}
	want := "bin\netc\nusr\nusr/bin\ninit\nbin/busybox\nbin/sh\netc/motd\nusr/bin/ctr"
	if got := listing(t, archive); got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	dir := extract(t, archive)
	if b, _ := os.ReadFile(filepath.Join(dir, "usr/bin/ctr")); string(b) != "pid1" {
		t.Errorf("usr/bin/ctr = %q, want init's data", b)
	}
	fi1, err1 := os.Stat(filepath.Join(dir, "init"))
	fi2, err2 := os.Stat(filepath.Join(dir, "usr/bin/ctr"))
	if err1 != nil || err2 != nil || !os.SameFile(fi1, fi2) {
		t.Errorf("init and usr/bin/ctr are not one inode: %v %v", err1, err2)
	}

	archive, err = unpackToArchive(t, "containers/onboot/000-x/rootfs", layers...)
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, archive); !strings.Contains(got, "rootfs/etc/motd\ncontainers/onboot/000-x/rootfs/init\n") {
		t.Errorf("a bundle's init moved:\n%s", got)
	}
}
