package initrd

import (
	"fmt"
	"io"

	"github.com/keel-os/keel/pkg/cpio"
)

// cpioSink writes a tree as one newc archive: an initrd segment. Inode
// numbers count from 1 in each archive, as the kernel forgets them at each
// trailer.
type cpioSink struct {
	cw *cpio.Writer
	// inos maps the first name of each file with several names to its
	// inode, for the later names.
	inos map[string]uint32
}

func newCPIOSink(w io.Writer) *cpioSink {
	return &cpioSink{cw: cpio.NewWriter(w), inos: map[string]uint32{}}
}

func (s *cpioSink) Add(e Entry, data io.Reader) error {
	h := cpio.Header{
		Name: e.Name, Mode: e.Mode, UID: e.UID, GID: e.GID, Nlink: e.Nlink, Mtime: e.Mtime,
		Size: e.Size, Linkname: e.Linkname, Rdevmajor: e.Devmajor, Rdevminor: e.Devminor,
	}
	if e.HardLink != "" {
		ino, ok := s.inos[e.HardLink]
		if !ok {
			return fmt.Errorf("%s: hard link to %s, which is not written before it", e.Name, e.HardLink)
		}
		h.Ino, h.Size = ino, 0
	}
	if err := s.cw.WriteHeader(&h); err != nil {
		return err
	}
	if e.Nlink >= 2 && e.HardLink == "" {
		s.inos[e.Name] = h.Ino
	}
	if h.Mode&cpio.ModeType == cpio.ModeRegular && h.Size > 0 {
		if _, err := io.CopyN(s.cw, data, h.Size); err != nil {
			return fmt.Errorf("%s: copy data: %w", e.Name, err)
		}
	}
	return nil
}

// Close writes the trailer and flushes.
func (s *cpioSink) Close() error { return s.cw.Close() }
