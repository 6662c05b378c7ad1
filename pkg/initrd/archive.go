package initrd

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/keel-os/keel/pkg/cpio"
)

// Archive is an initrd's cpio stream as it is being written. It remembers
// the directories written so that every parent comes once and before its
// children (the kernel does not create missing parents), and it stamps
// every entry with the same mtime so that builds are reproducible.
type Archive struct {
	cw    *cpio.Writer
	mtime int64
	dirs  map[string]bool
	// xattrWarnings warns of the extended attributes of the layers that may not
	// be set at boot (xattrWarnings).
	xattrWarnings []string
}

// warn records warnings about extended attributes.
func (a *Archive) warn(lines ...string) { a.xattrWarnings = append(a.xattrWarnings, lines...) }

// XattrWarnings lists the warnings about extended attributes that the build
// leaves out or that a tmpfs root may not hold at boot: one line per image
// and kind, naming a few of the files.
func (a *Archive) XattrWarnings() []string { return a.xattrWarnings }

// NewArchive starts an archive written to w with every mtime set to mtime
// (seconds since the epoch).
func NewArchive(w io.Writer, mtime int64) *Archive {
	return &Archive{cw: cpio.NewWriter(w), mtime: mtime, dirs: map[string]bool{}}
}

// MkdirAll writes name and its missing parents as directories owned by
// root, mode 0755.
func (a *Archive) MkdirAll(name string) error {
	if name == "" {
		return nil
	}
	if err := a.MkdirAll(parent(name)); err != nil {
		return err
	}
	return a.Dir(name, 0o755, 0, 0)
}

// dirWritten records that name and its parents exist already, made by an
// earlier archive of the same initrd.
func (a *Archive) dirWritten(name string) {
	for ; name != ""; name = parent(name) {
		a.dirs[name] = true
	}
}

// Dir writes a directory entry unless that directory was already written.
// Its parents must have been written.
func (a *Archive) Dir(name string, perm, uid, gid uint32) error {
	if a.dirs[name] {
		return nil
	}
	a.dirs[name] = true
	return a.cw.WriteHeader(&cpio.Header{Name: name, Mode: cpio.ModeDir | perm&cpio.ModePerm, UID: uid, GID: gid, Nlink: 2, Mtime: a.mtime})
}

// Entry writes the header of a non-directory entry, creating its missing
// parents first; a regular file's data follows through Write.
func (a *Archive) Entry(h cpio.Header) (ino uint32, err error) {
	if h.Mode&cpio.ModeType == cpio.ModeDir {
		return 0, fmt.Errorf("initrd: %s: directories are written with Dir", h.Name)
	}
	if err := a.MkdirAll(parent(h.Name)); err != nil {
		return 0, err
	}
	h.Mtime = a.mtime
	if err := a.cw.WriteHeader(&h); err != nil {
		return 0, err
	}
	return h.Ino, nil
}

// WriteFile writes a regular file owned by root with the given contents.
func (a *Archive) WriteFile(name string, perm uint32, data []byte) error {
	if _, err := a.Entry(cpio.Header{Name: name, Mode: cpio.ModeRegular | perm&cpio.ModePerm, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := a.cw.Write(data)
	return err
}

// Write writes data of the current entry.
func (a *Archive) Write(p []byte) (int, error) { return a.cw.Write(p) }

// Close writes the trailer and flushes.
func (a *Archive) Close() error { return a.cw.Close() }

// parent is name's directory, "" at the top.
func parent(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// join puts name under prefix; either may be "".
func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return path.Join(prefix, name)
}
