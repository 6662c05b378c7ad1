package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/testenv"
)

// cpioTool runs the system cpio with stdin from archive, in dir.
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

type entry struct {
	h    Header
	data string
}

func writeArchive(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i := range entries {
		e := &entries[i]
		e.h.Size = int64(len(e.data))
		if err := w.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", buf.Len())
	}
	return buf.Bytes()
}

var longName = "d/" + strings.Repeat("long-directory-name/", 8) + "file"

func testEntries() []entry {
	return []entry{
		{h: Header{Name: "d", Mode: ModeDir | 0o755}},
		{h: Header{Name: "d/file", Mode: ModeRegular | 0o640, UID: 1000, GID: 100, Mtime: 1700000000}, data: "hello\n"},
		{h: Header{Name: "d/empty", Mode: ModeRegular | 0o600}},
		{h: Header{Name: "d/odd", Mode: ModeRegular | 0o644}, data: "abc"},
		{h: Header{Name: "d/link", Mode: ModeSymlink | 0o777, Linkname: "file"}},
		{h: Header{Name: "d/hard1", Mode: ModeRegular | 0o644, Nlink: 2, Ino: 900}, data: "shared data"},
		{h: Header{Name: "d/hard2", Mode: ModeRegular | 0o644, Nlink: 2, Ino: 900}},
		{h: Header{Name: "d/" + strings.Repeat("long-directory-name/", 8)[:len(strings.Repeat("long-directory-name/", 8))-1], Mode: ModeDir | 0o755}},
		{h: Header{Name: longName, Mode: ModeRegular | 0o644}, data: "deep"},
	}
}

func TestCPIOListing(t *testing.T) {
	es := append(testEntries(),
		entry{h: Header{Name: "dev", Mode: ModeDir | 0o755}},
		entry{h: Header{Name: "dev/console", Mode: ModeChar | 0o600, Rdevmajor: 5, Rdevminor: 1}},
		entry{h: Header{Name: "fifo", Mode: ModeFIFO | 0o644}},
	)
	archive := writeArchive(t, es)
	out := cpioTool(t, archive, t.TempDir(), "-t", "--quiet")
	var want []string
	for _, e := range es {
		want = append(want, e.h.Name)
	}
	if got := strings.Fields(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cpio -t:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	verbose := cpioTool(t, archive, t.TempDir(), "-tv", "--quiet", "--numeric-uid-gid")
	if !strings.Contains(verbose, "crw-------") || !strings.Contains(verbose, "5,   1") {
		t.Errorf("device node not listed as char 5,1:\n%s", verbose)
	}
	if !strings.Contains(verbose, "1000     100") {
		t.Errorf("owner 1000:100 not kept:\n%s", verbose)
	}
}

func TestCPIOExtract(t *testing.T) {
	dir := t.TempDir()
	cpioTool(t, writeArchive(t, testEntries()), dir, "-idm", "--quiet", "--no-absolute-filenames")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, want := range map[string]string{
		"d/file": "hello\n", "d/empty": "", "d/odd": "abc", "d/hard1": "shared data",
		"d/hard2": "shared data", longName: "deep",
	} {
		if got := read(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "d/link")); err != nil || target != "file" {
		t.Errorf("symlink = %q, %v", target, err)
	}
	a, _ := os.Stat(filepath.Join(dir, "d/hard1"))
	b, _ := os.Stat(filepath.Join(dir, "d/hard2"))
	if !os.SameFile(a, b) {
		t.Error("d/hard1 and d/hard2 are not the same inode")
	}
	fi, _ := os.Stat(filepath.Join(dir, "d/file"))
	if fi.Mode().Perm() != 0o640 || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("d/file mode %v mtime %d", fi.Mode(), fi.ModTime().Unix())
	}
}

func TestCPIOWriterRefusesMisuse(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.WriteHeader(&Header{Name: "f", Mode: ModeRegular, Size: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("toolong")); err == nil {
		t.Error("write past the entry's size accepted")
	}
	if err := w.WriteHeader(&Header{Name: "g", Mode: ModeRegular}); err == nil {
		t.Error("new header before the data was complete accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("close with data missing accepted")
	}
	if err := NewWriter(&bytes.Buffer{}).WriteHeader(&Header{Name: "big", Mode: ModeRegular, Size: 1 << 32}); err == nil {
		t.Error("5 GiB file accepted")
	}
}
