package initrd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
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

// The initrd's root segment lists every segment with the tmpfs bytes of
// its files, itself included, as counted from the archives themselves;
// a warm build, whose segments come from the cache, lists the same.
func TestInitrdListsEachSegmentsTmpfsBytes(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "segments")
	b := testBuild(t)
	// A root file of several pages and a long symlink in a bundle.
	b.Contents.Files = append(b.Contents.Files, config.File{Path: "etc/big", Mode: 0o644, Contents: strings.Repeat("x", 3*4096+5)})
	other := testImage(t, tarEntry{"bin/", ""}, tarEntry{"bin/getty", "getty"},
		tarEntry{"bin/" + strings.Repeat("l", 200) + "=>bin/getty", ""})
	b.Contents.Bundles[2].Image.Image = other
	build := func() ([]byte, SegmentStats) {
		t.Helper()
		var st SegmentStats
		b.SegmentCache, b.Stats = cache, &st
		o := Outputs{Dir: t.TempDir(), Name: "x"}
		if err := Write(o, b); err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(o.Initrd())
		if err != nil {
			t.Fatal(err)
		}
		return img, st
	}
	first, st := build()
	if st.Written != 3 {
		t.Fatalf("cold build: %+v", st)
	}
	raw := decompress(t, Gzip, bytes.TrimLeft(first[len("070701 early microcode, 30 B!!"):], "\x00"))
	cr := cpio.NewReader(bytes.NewReader(raw))
	var counted []int64 // per archive, from the headers
	var list, sizes string
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for len(counted) <= cr.Archive {
			counted = append(counted, 0)
		}
		switch h.Mode & cpio.ModeType {
		case cpio.ModeRegular:
			counted[cr.Archive] += (h.Size + 4095) / 4096 * 4096
			switch "/" + h.Name {
			case bundle.SealsExpected:
				d, _ := io.ReadAll(cr)
				list = string(d)
			case bundle.SealsTmpfs:
				d, _ := io.ReadAll(cr)
				sizes = string(d)
			}
		case cpio.ModeSymlink:
			if len(h.Linkname) >= 128 {
				counted[cr.Archive] += 4096
			}
		}
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, bundle.SealsDir), 0o755)
	os.WriteFile(filepath.Join(root, bundle.SealsExpected), []byte(list), 0o644)
	os.WriteFile(filepath.Join(root, bundle.SealsTmpfs), []byte(sizes), 0o644)
	if strings.ContainsRune(list, ' ') {
		t.Errorf("the seal list has more than names (an older PID 1 reads it): %q", list)
	}
	seals, err := bundle.ExpectedSeals(root)
	if err != nil || len(seals) != len(counted) {
		t.Fatalf("seal list %q (%v) for %d archives", list, err, len(counted))
	}
	for i, s := range seals {
		if s.Bytes != counted[i] {
			t.Errorf("segment %d (%s): listed %d bytes, its files take %d", i, s.Name, s.Bytes, counted[i])
		}
	}
	if counted[0] < 5*4096 || counted[2] < 4096 {
		t.Errorf("counted %v: the big file or the long symlink is missing", counted)
	}

	// Warm: every segment from the cache, the same list.
	again, st := build()
	if st.Reused != 3 || !bytes.Equal(first, again) {
		t.Fatalf("warm build: %+v, same bytes %v", st, bytes.Equal(first, again))
	}
	// A cache entry without its tmpfs bytes (an older keel's) is made again.
	sidecars, _ := filepath.Glob(filepath.Join(cache, "*"+tmpfsBytesExt))
	if len(sidecars) != 3 {
		t.Fatalf("%d %s files in the cache, want 3", len(sidecars), tmpfsBytesExt)
	}
	os.Remove(sidecars[0])
	third, st := build()
	if st.Written != 1 || st.Reused != 2 || !bytes.Equal(first, third) {
		t.Fatalf("a cached segment without its sidecar: %+v, same bytes %v; want it made again", st, bytes.Equal(first, third))
	}
}

// A segment from the cache reports the tmpfs bytes it reported when it
// was made.
func TestCachedSegmentKeepsItsTmpfsBytes(t *testing.T) {
	st := &segmentStore{dir: t.TempDir(), tmp: t.TempDir(), compression: Gzip}
	seg := segment{name: "x", key: "k", fill: func(a *Archive) error {
		return a.WriteFile("a", 0o644, make([]byte, 4097))
	}}
	p1, n1, err := st.file(seg)
	if err != nil {
		t.Fatal(err)
	}
	p2, n2, err := st.file(seg)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || n1 != 2*4096 || n2 != n1 || st.stats.Written != 1 || st.stats.Reused != 1 {
		t.Fatalf("made %s (%d bytes), then %s (%d bytes), %+v; want the same file and 8192 bytes, reused", p1, n1, p2, n2, st.stats)
	}
}
