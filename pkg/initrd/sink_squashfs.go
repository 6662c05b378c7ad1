package initrd

import (
	"fmt"
	"io"
	"os"

	"github.com/keel-os/keel/pkg/squashfs"
)

// squashfsSink writes a tree into a squashfs image (pkg/squashfs): data
// streams into the image as it comes, hard links stay one inode, owners
// and all mode bits are kept. Extended attributes are not written into
// the image: the xattrs manifest, which PID 1 applies at boot, is in the
// tree as it is in the initrd.
//
// go-diskfs (v1.9.4) has a squashfs writer too, tried first: it builds the
// image from a directory on the build host, and loses owners (it reads
// them with a type assertion that never matches on Linux), setuid, setgid
// and sticky bits (it stores the mode as uint16(os.FileMode)) and hard
// links (one inode per name, the data copied); it reads symlink targets
// and device numbers by paths relative to the working directory, fails on
// a symlink whose target is not on the build host (listxattr follows it),
// and stamps the superblock with the time of day.
type squashfsSink struct{ w *squashfs.Writer }

func (s squashfsSink) Add(e Entry, data io.Reader) error {
	return s.w.Add(squashfs.File{
		Name: e.Name, Mode: e.Mode, UID: e.UID, GID: e.GID, Mtime: e.Mtime, Size: e.Size,
		Linkname: e.Linkname, Major: e.Devmajor, Minor: e.Devminor, HardLink: e.HardLink,
	}, data)
}

// WriteSquashfs writes the whole tree of c (the same tree as the initrd
// and the tar, every segment) as a squashfs image at p, with every mtime,
// and the image's own, set to mtime.
func WriteSquashfs(p string, c Contents, mtime int64) error {
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	w := squashfs.NewWriter(f, mtime)
	if err := writeTree(squashfsSink{w}, c, mtime); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	return nil
}
