// Package cpio reads and writes newc ("070701") cpio archives, the format
// the Linux kernel unpacks into its initramfs. It stands alone: a Writer
// streams entries out, a Reader streams them back (several archives one
// after the other, as the kernel reads an initrd); what goes in an archive
// is the caller's business.
package cpio

// File type bits of a cpio (and stat) mode.
const (
	ModeType    = 0o170000
	ModeSocket  = 0o140000
	ModeSymlink = 0o120000
	ModeRegular = 0o100000
	ModeBlock   = 0o060000
	ModeDir     = 0o040000
	ModeChar    = 0o020000
	ModeFIFO    = 0o010000
	ModePerm    = 0o7777 // permissions with setuid, setgid and sticky
)

// maxSize is the largest file newc can hold: sizes are 8 hex digits.
const maxSize = 1<<32 - 1

const trailerName = "TRAILER!!!"

// Header is one entry of a newc ("070701") cpio archive, the format the
// kernel unpacks into the initramfs.
type Header struct {
	// Name is the path inside the archive, relative, without a leading "/".
	Name string
	// Mode is the file type (Mode* constants) and permission bits.
	Mode     uint32
	UID, GID uint32
	// Nlink is the number of names of the inode; 0 is written as 1. The
	// kernel treats a regular file whose Nlink is 2 or more as a hard link
	// candidate: a later entry with the same Ino becomes a link to it.
	Nlink uint32
	Mtime int64
	// Size is the length of a regular file's data. For a symlink it is
	// ignored: the data is Linkname.
	Size     int64
	Linkname string
	// Rdevmajor and Rdevminor are a device node's numbers.
	Rdevmajor, Rdevminor uint32
	// Ino is the inode number. Zero asks the writer for a fresh one, which
	// it stores here, so that later hard links can reuse it.
	Ino uint32
}
