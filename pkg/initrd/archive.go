package initrd

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/keel-os/keel/pkg/cpio"
)

// Entry is one file of a tree being written into a Sink. Its file type
// and permission bits are a stat mode (cpio.Mode*), the one vocabulary
// every sink understands.
type Entry struct {
	// Name is the path in the tree, relative, without a leading "/".
	Name     string
	Mode     uint32
	UID, GID uint32
	Mtime    int64
	// Size is a regular file's data length; the data follows the entry.
	Size int64
	// Linkname is a symlink's target.
	Linkname string
	// Devmajor and Devminor are a device node's numbers.
	Devmajor, Devminor uint32
	// Nlink, when 2 or more, is how many names a regular file has in the
	// tree. The first name carries the data; the others come later, with
	// HardLink set. A cpio sink must know the count at the first name.
	Nlink uint32
	// HardLink, for a later name of a file with several names, is the
	// name that carried its data; such an entry has no data of its own.
	HardLink string
}

// A Sink receives the entries of a flattened tree: every directory before
// what lies in it, each name at most once (directories are deduplicated
// by Archive), and a regular file's data right after its entry. Sinks
// write an initrd's cpio segments (cpioSink), the tar output (tarSink),
// and the squashfs image (squashfsSink).
type Sink interface {
	// Add writes e; data holds exactly e.Size bytes for a regular file
	// with data, and is nil otherwise.
	Add(e Entry, data io.Reader) error
}

// Archive is a tree as it is being written into a sink. It remembers the
// directories written so that every parent comes once and before its
// children (the kernel does not create missing parents), and it stamps
// every entry with the same mtime so that builds are reproducible.
type Archive struct {
	sink  Sink
	mtime int64
	dirs  map[string]bool
	// xattrWarnings warns of the extended attributes of the layers that may not
	// be set at boot (xattrWarnings).
	xattrWarnings []string
	// tmpfsBytes counts what the entries written take in a tmpfs
	// (TmpfsBytes).
	tmpfsBytes int64
}

// tmpfsPage is the unit a tmpfs charges its size limit in: a page.
const tmpfsPage = 4096

// tmpfsShortSymlink is the longest symlink target, its NUL included, a
// tmpfs keeps in the inode (Linux's SHORT_SYMLINK_LEN); a longer one takes
// a page.
const tmpfsShortSymlink = 128

// tmpfsCharge is what entry e takes of a tmpfs's size limit once unpacked:
// a regular file's data rounded up to whole pages (once per file: a later
// name of it has no data), a page for a long symlink target, and nothing
// for a directory, a device or a short symlink (they take an inode, which
// the size limit does not count).
func tmpfsCharge(e Entry) int64 {
	switch e.Mode & cpio.ModeType {
	case cpio.ModeRegular:
		if e.HardLink != "" {
			return 0
		}
		return (e.Size + tmpfsPage - 1) / tmpfsPage * tmpfsPage
	case cpio.ModeSymlink:
		if len(e.Linkname)+1 > tmpfsShortSymlink {
			return tmpfsPage
		}
	}
	return 0
}

// TmpfsBytes is the memory the entries written so far take once the
// kernel unpacks them into its rootfs tmpfs: what they count against its
// size limit (tmpfsCharge). A file that a later entry replaces is counted
// twice, so the figure errs on the high side.
func (a *Archive) TmpfsBytes() int64 { return a.tmpfsBytes }

// warn records warnings about extended attributes.
func (a *Archive) warn(lines ...string) { a.xattrWarnings = append(a.xattrWarnings, lines...) }

// XattrWarnings lists the warnings about extended attributes that the build
// leaves out or that a tmpfs root may not hold at boot: one line per image
// and kind, naming a few of the files.
func (a *Archive) XattrWarnings() []string { return a.xattrWarnings }

// NewArchive starts a newc cpio archive written to w with every mtime set
// to mtime (seconds since the epoch). Close ends it.
func NewArchive(w io.Writer, mtime int64) *Archive {
	return NewArchiveTo(newCPIOSink(w), mtime)
}

// NewArchiveTo starts a tree written into s with every mtime set to
// mtime. Close closes s if it is an io.Closer.
func NewArchiveTo(s Sink, mtime int64) *Archive {
	return &Archive{sink: s, mtime: mtime, dirs: map[string]bool{}}
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
	return a.sink.Add(Entry{Name: name, Mode: cpio.ModeDir | perm&cpio.ModePerm, UID: uid, GID: gid, Nlink: 2, Mtime: a.mtime}, nil)
}

// Entry writes a non-directory entry, creating its missing parents first;
// data holds a regular file's e.Size bytes (nil for none).
func (a *Archive) Entry(e Entry, data io.Reader) error {
	if e.Mode&cpio.ModeType == cpio.ModeDir {
		return fmt.Errorf("initrd: %s: directories are written with Dir", e.Name)
	}
	if err := a.MkdirAll(parent(e.Name)); err != nil {
		return err
	}
	e.Mtime = a.mtime
	if e.Size == 0 || e.HardLink != "" {
		data = nil
	} else if data == nil {
		return fmt.Errorf("initrd: %s: %d bytes of data missing", e.Name, e.Size)
	}
	if err := a.sink.Add(e, data); err != nil {
		return err
	}
	a.tmpfsBytes += tmpfsCharge(e)
	return nil
}

// WriteFile writes a regular file owned by root with the given contents.
func (a *Archive) WriteFile(name string, perm uint32, data []byte) error {
	return a.Entry(Entry{Name: name, Mode: cpio.ModeRegular | perm&cpio.ModePerm, Size: int64(len(data))}, bytes.NewReader(data))
}

// Close ends the tree: for a cpio archive, its trailer.
func (a *Archive) Close() error {
	if c, ok := a.sink.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

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
