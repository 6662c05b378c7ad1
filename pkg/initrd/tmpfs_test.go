package initrd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/cpio"
)

// An archive counts what its files take in a tmpfs: each regular file's
// data in whole pages, once per file, a page per long symlink target, and
// nothing for directories, devices, short symlinks and empty files.
func TestArchiveTmpfsBytes(t *testing.T) {
	a := NewArchive(&bytes.Buffer{}, 0)
	for _, f := range []struct {
		name string
		size int
	}{{"a/one", 1}, {"a/page", 4096}, {"b/c/page-and-one", 4097}, {"empty", 0}} {
		if err := a.WriteFile(f.name, 0o644, make([]byte, f.size)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.TmpfsBytes(), int64(4*4096); got != want {
		t.Fatalf("files of 1, 4096, 4097 and 0 bytes: %d bytes, want %d (4 pages)", got, want)
	}
	entries := []Entry{
		{Name: "short", Mode: cpio.ModeSymlink | 0o777, Linkname: strings.Repeat("x", 127)}, // 128 with its NUL: inline
		{Name: "long", Mode: cpio.ModeSymlink | 0o777, Linkname: strings.Repeat("x", 128)},  // a page
		{Name: "dev/null", Mode: cpio.ModeChar | 0o666, Devmajor: 1, Devminor: 3},           // an inode only
		{Name: "big", Mode: cpio.ModeRegular | 0o644, Size: 3 * 4096, Nlink: 2},             // 3 pages
		{Name: "big-too", Mode: cpio.ModeRegular | 0o644, HardLink: "big", Size: 3 * 4096},  // the same pages
	}
	for _, e := range entries {
		var data *bytes.Reader
		if e.Mode&cpio.ModeType == cpio.ModeRegular && e.HardLink == "" {
			data = bytes.NewReader(make([]byte, e.Size))
		}
		var err error
		if data != nil {
			err = a.Entry(e, data)
		} else {
			err = a.Entry(e, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.TmpfsBytes(), int64((4+1+3)*4096); got != want {
		t.Fatalf("after links and a device: %d bytes, want %d (8 pages)", got, want)
	}
}
