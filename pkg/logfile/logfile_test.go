package logfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "svc.log")
	os.WriteFile(path+".1", []byte("o1\no2\no3"), 0o644) // no final newline
	os.WriteFile(path, []byte("c1\nc2\n"), 0o644)
	for _, tc := range []struct {
		n    int
		want string
	}{
		{1, "c2\n"},
		{2, "c1\nc2\n"},
		{3, "o3\nc1\nc2\n"},
		{0, "o1\no2\no3\nc1\nc2\n"},
		{100, "o1\no2\no3\nc1\nc2\n"},
	} {
		b, err := Tail(path, tc.n)
		if err != nil || string(b) != tc.want {
			t.Errorf("Tail(%d) = %q, %v; want %q", tc.n, b, err, tc.want)
		}
	}
	os.Remove(path + ".1")
	if b, err := Tail(path, 5); err != nil || string(b) != "c1\nc2\n" {
		t.Errorf("without .1: %q %v", b, err)
	}
	if _, err := Tail(filepath.Join(dir, "none.log"), 5); !os.IsNotExist(err) {
		t.Errorf("missing log: %v", err)
	}
}

func TestRotatesAtMaxKeepingOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.log")
	l, err := Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	line := []byte(strings.Repeat("x", 39) + "\n")
	for range 10 {
		if n, err := l.Write(line); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// A write is never split: the bound is max plus one write.
		if fi.Size() > 100+int64(len(line)) || fi.Size() == 0 {
			t.Errorf("%s is %d bytes, want 1..%d", p, fi.Size(), 100+len(line))
		}
	}
	if matches, _ := filepath.Glob(path + "*"); len(matches) != 2 {
		t.Errorf("files %v, want the log and one rotated file", matches)
	}
	if l.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", l.Dropped())
	}
}

// /dev/full fails every write with ENOSPC, as a full /var does.
func TestFullDiskDropsAndNeverFails(t *testing.T) {
	l, err := Open("/dev/full", 1<<20)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer l.Close()
	for range 3 {
		if n, err := l.Write([]byte("hello\n")); n != 6 || err != nil {
			t.Fatalf("Write on a full disk = %d, %v; want 6, nil (the copy feeding it must go on)", n, err)
		}
	}
	if l.Dropped() != 18 {
		t.Fatalf("Dropped = %d, want 18", l.Dropped())
	}
}

// A real full filesystem: the writes are dropped while it is full, and once
// there is room again the log says how much was lost before going on.
func TestFullTmpfsThenRoom(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a 64k tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	l, err := Open(filepath.Join(dir, "svc.log"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill := filepath.Join(dir, "fill")
	if err := os.WriteFile(fill, make([]byte, 128<<10), 0o644); err == nil {
		t.Fatal("128 KiB fit in a 64 KiB tmpfs: the disk is not full")
	}
	chunk := bytes.Repeat([]byte("y"), 4096)
	for range 4 {
		if n, err := l.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write on a full tmpfs = %d, %v", n, err)
		}
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped on a full tmpfs")
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("after\n"))
	b, err := os.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("bytes of output dropped: no space left on device]\nafter\n")) {
		t.Fatalf("log does not mark the gap before the new output; ends with %q", b[max(0, len(b)-200):])
	}
}
