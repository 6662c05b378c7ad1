package cpio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestReaderRoundTrip reads back what the Writer wrote: two archives one
// after the other with zeros between, as an initrd holds them.
func TestReaderRoundTrip(t *testing.T) {
	first := writeArchive(t, testEntries())
	second := writeArchive(t, []entry{{h: Header{Name: "other", Mode: ModeRegular | 0o600, UID: 7}, data: "x"}})
	stream := append(append(append([]byte{}, first...), make([]byte, 8)...), second...)
	r := NewReader(bytes.NewReader(stream))
	want := append(testEntries(), entry{h: Header{Name: "other", Mode: ModeRegular | 0o600, UID: 7}, data: "x"})
	for i, w := range want {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("entry %d (%s): %v", i, w.h.Name, err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: read data: %v", h.Name, err)
		}
		if h.Mode&ModeType == ModeSymlink {
			data = nil // the target is Linkname, read by Next
		}
		wantArchive := 0
		if i == len(want)-1 {
			wantArchive = 1
		}
		if h.Name != w.h.Name || h.Mode != w.h.Mode || h.UID != w.h.UID || h.GID != w.h.GID ||
			h.Mtime != w.h.Mtime || h.Linkname != w.h.Linkname || string(data) != w.data || r.Archive != wantArchive {
			t.Errorf("entry %d: got %+v %q (archive %d), want %+v %q (archive %d)", i, h, data, r.Archive, w.h, w.data, wantArchive)
		}
		if w.h.Ino != 0 && h.Ino != w.h.Ino {
			t.Errorf("%s: ino %d, want %d", h.Name, h.Ino, w.h.Ino)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last entry: %v, want io.EOF", err)
	}
}

func TestReaderRefusesDamage(t *testing.T) {
	good := writeArchive(t, testEntries())
	for name, b := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"bad magic": append([]byte("070702"), good[6:]...),
		"unaligned": append([]byte{'x'}, good...),
	} {
		r := NewReader(bytes.NewReader(b))
		var err error
		for err == nil {
			if _, err = r.Next(); err == nil {
				_, err = io.ReadAll(r)
			}
		}
		if errors.Is(err, io.EOF) {
			t.Errorf("%s archive read to the end without an error", name)
		}
	}
}
