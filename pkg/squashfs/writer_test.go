package squashfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/testenv"
)

type entry struct {
	f    File
	data string
}

// big is more than one data block and than one metadata block of names.
var big = strings.Repeat("0123456789abcdef", 3*BlockSize/16+1000)

// program is an executable (ELF) of more than one block: stored
// uncompressed.
var program = "\x7fELF\x02\x01\x01" + big

func testEntries() []entry {
	es := []entry{
		{f: File{Name: "bin", Mode: ModeDir | 0o755}},
		{f: File{Name: "bin/busybox", Mode: ModeRegular | 0o4755, Size: 7}, data: "busybox"},
		{f: File{Name: "bin/sh", Mode: ModeRegular, HardLink: "bin/busybox"}},
		{f: File{Name: "bin/ls", Mode: ModeSymlink | 0o777, Linkname: "busybox"}},
		{f: File{Name: "bin/program", Mode: ModeRegular | 0o755, Size: int64(len(program))}, data: program},
		{f: File{Name: "dev", Mode: ModeDir | 0o755}},
		{f: File{Name: "dev/console", Mode: ModeChar | 0o600, Major: 5, Minor: 1}},
		{f: File{Name: "dev/sda3", Mode: ModeBlock | 0o660, Major: 259, Minor: 3, GID: 6}},
		{f: File{Name: "dev/fifo", Mode: ModeFIFO | 0o644}},
		{f: File{Name: "home", Mode: ModeDir | 0o755}},
		{f: File{Name: "home/user", Mode: ModeDir | 0o700, UID: 1000, GID: 100}},
		{f: File{Name: "home/user/big", Mode: ModeRegular | 0o640, UID: 1000, GID: 100, Size: int64(len(big))}, data: big},
		{f: File{Name: "home/user/empty", Mode: ModeRegular | 0o600, UID: 1000, GID: 100}},
		{f: File{Name: "tmp", Mode: ModeDir | 0o1777}},
		{f: File{Name: "many", Mode: ModeDir | 0o755}},
		{f: File{Name: "abs", Mode: ModeSymlink | 0o777, Linkname: "/does/not/exist"}},
	}
	for i := range 600 {
		name := "many/" + strings.Repeat("x", 40) + string(rune('a'+i%26)) + strings.Repeat("y", i%7) + "-" + itoa(i)
		es = append(es, entry{f: File{Name: name, Mode: ModeRegular | 0o644, Size: 1}, data: "z"})
	}
	for i := range es {
		es[i].f.Mtime = 1700000000
	}
	return es
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func writeImage(t *testing.T, es []entry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.squashfs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, 1700000000)
	for _, e := range es {
		var data *strings.Reader
		if e.data != "" {
			data = strings.NewReader(e.data)
		}
		var err error
		if data != nil {
			err = w.Add(e.f, data)
		} else {
			err = w.Add(e.f, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriterIsReproducible(t *testing.T) {
	a, _ := os.ReadFile(writeImage(t, testEntries()))
	b, _ := os.ReadFile(writeImage(t, testEntries()))
	if !bytes.Equal(a, b) || len(a)%4096 != 0 || string(a[:4]) != "hsqs" {
		t.Errorf("two images of the same entries: %d and %d bytes, equal %v", len(a), len(b), bytes.Equal(a, b))
	}
}

func TestWriterRefusesMisuse(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, 0)
	for _, bad := range []File{
		{Name: "a/b", Mode: ModeRegular},                 // no parent
		{Name: "../x", Mode: ModeRegular},                // leaves the image
		{Name: "l", Mode: ModeRegular, HardLink: "none"}, // link to nothing
	} {
		if err := w.Add(bad, nil); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	if err := w.Add(File{Name: "f", Mode: ModeRegular, Size: 5}, strings.NewReader("abc")); err == nil {
		t.Error("short data accepted")
	}
}

// TestUnsquashfsReadsIt checks the image with squashfs-tools, a second
// implementation: listing with owners, modes and device numbers, and the
// data and hard links once extracted.
func TestUnsquashfsReadsIt(t *testing.T) {
	testenv.Tool(t, "unsquashfs", "squashfs-tools")
	img := writeImage(t, testEntries())
	out, err := exec.Command("unsquashfs", "-lln", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	list := strings.Join(lines, "\n")
	for _, want := range []string{
		"-rwsr-xr-x 0/0 7 2023-11-14 22:13 squashfs-root/bin/busybox",
		"-rwsr-xr-x 0/0 7 2023-11-14 22:13 squashfs-root/bin/sh",
		"lrwxrwxrwx 0/0 7 2023-11-14 22:13 squashfs-root/bin/ls -> busybox",
		"crw------- 0/0 5, 1 2023-11-14 22:13 squashfs-root/dev/console",
		"brw-rw---- 0/6 259, 3 2023-11-14 22:13 squashfs-root/dev/sda3",
		"prw-r--r-- 0/0 0 2023-11-14 22:13 squashfs-root/dev/fifo",
		"drwx------ 1000/100 ",
		"-rw-r----- 1000/100 " + itoa(len(big)) + " 2023-11-14 22:13 squashfs-root/home/user/big",
		"drwxrwxrwt 0/0 ",
		"lrwxrwxrwx 0/0 15 2023-11-14 22:13 squashfs-root/abs -> /does/not/exist",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("unsquashfs -lln lacks %q:\n%.3000s", want, list)
		}
	}
	if n := strings.Count(list, "squashfs-root/many/"); n != 600 {
		t.Errorf("many/ lists %d entries, want 600", n)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("unsquashfs", "-d", dest, img).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "home/user/big")); string(b) != big {
		t.Errorf("big file: %d bytes back, want %d", len(b), len(big))
	}
	a, _ := os.Stat(filepath.Join(dest, "bin/busybox"))
	b, _ := os.Stat(filepath.Join(dest, "bin/sh"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("bin/sh is not a hard link of bin/busybox")
	}
}

// An ELF file's blocks are stored as they are, other files' compressed.
// (TestKernelMountsIt reads both back.)
func TestExecutablesStoredUncompressed(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "img.squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, 1700000000)
	for _, e := range []entry{
		{f: File{Name: "program", Mode: ModeRegular | 0o755, Size: int64(len(program))}, data: program},
		{f: File{Name: "text", Mode: ModeRegular | 0o644, Size: int64(len(big))}, data: big},
	} {
		if err := w.Add(e.f, strings.NewReader(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		raw  bool
	}{{"program", true}, {"text", false}} {
		sizes := w.nodes[c.name].blockSizes
		if len(sizes) < 2 {
			t.Fatalf("%s: %d blocks", c.name, len(sizes))
		}
		for i, s := range sizes {
			if raw := s&dataUncompBit != 0; raw != c.raw {
				t.Errorf("%s block %d: stored uncompressed %v, want %v", c.name, i, raw, c.raw)
			}
		}
	}
}
