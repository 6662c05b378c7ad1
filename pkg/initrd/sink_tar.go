package initrd

import (
	"archive/tar"
	"fmt"
	"io"
	"time"

	"github.com/keel-os/keel/pkg/cpio"
)

// tarSink writes trees into a tar, PAX format. Several trees (the
// initrd's segments) may go into one tar, and a later segment may name a
// directory an earlier one made: each directory is written once, the
// first time it comes, so that an extractor keeps the first owner and
// mode. A later name of a file with several names is a tar hard link to
// its first name.
type tarSink struct {
	tw   *tar.Writer
	dirs map[string]bool
}

// newTarSink writes into tw; the directories given are written already.
func newTarSink(tw *tar.Writer, written ...string) *tarSink {
	s := &tarSink{tw: tw, dirs: map[string]bool{}}
	for _, d := range written {
		s.dirs[d] = true
	}
	return s
}

func (s *tarSink) Add(e Entry, data io.Reader) error {
	h := &tar.Header{
		Name: e.Name, Mode: int64(e.Mode & cpio.ModePerm), Uid: int(e.UID), Gid: int(e.GID),
		ModTime: unixTime(e.Mtime), Format: tar.FormatPAX,
	}
	switch e.Mode & cpio.ModeType {
	case cpio.ModeDir:
		if s.dirs[e.Name] {
			return nil
		}
		s.dirs[e.Name] = true
		h.Typeflag, h.Name = tar.TypeDir, e.Name+"/"
	case cpio.ModeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Linkname
	case cpio.ModeChar:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(e.Devmajor), int64(e.Devminor)
	case cpio.ModeBlock:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(e.Devmajor), int64(e.Devminor)
	case cpio.ModeFIFO:
		h.Typeflag = tar.TypeFifo
	case cpio.ModeRegular:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
		if e.HardLink != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, e.HardLink, 0
		}
	default:
		return fmt.Errorf("%s: file type %#o has no tar equivalent", e.Name, e.Mode&cpio.ModeType)
	}
	if err := s.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	if h.Size > 0 {
		if _, err := io.CopyN(s.tw, data, h.Size); err != nil {
			return fmt.Errorf("%s: copy data: %w", e.Name, err)
		}
	}
	return nil
}

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }
