package initrd

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keel-os/keel/pkg/cpio"
)

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }

// cpioToTar copies the entries of the cpio archives in r into tw. Hard
// links (same inode, two or more links, within one archive) become tar
// hard links to the first name; a directory written already (in skip or
// earlier) is not written again.
func cpioToTar(tw *tar.Writer, r io.Reader, skip map[string]bool) error {
	cr := cpio.NewReader(r)
	dirs := map[string]bool{}
	for d := range skip {
		dirs[d] = true
	}
	links := map[uint32]string{}
	archive := 0
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if cr.Archive != archive {
			archive, links = cr.Archive, map[uint32]string{}
		}
		th := &tar.Header{
			Name: h.Name, Mode: int64(h.Mode & cpio.ModePerm), Uid: int(h.UID), Gid: int(h.GID),
			ModTime: unixTime(h.Mtime), Format: tar.FormatPAX,
		}
		switch h.Mode & cpio.ModeType {
		case cpio.ModeDir:
			if dirs[h.Name] {
				continue
			}
			dirs[h.Name] = true
			th.Typeflag, th.Name = tar.TypeDir, h.Name+"/"
		case cpio.ModeSymlink:
			th.Typeflag, th.Linkname = tar.TypeSymlink, h.Linkname
		case cpio.ModeChar, cpio.ModeBlock:
			th.Typeflag = tar.TypeChar
			if h.Mode&cpio.ModeType == cpio.ModeBlock {
				th.Typeflag = tar.TypeBlock
			}
			th.Devmajor, th.Devminor = int64(h.Rdevmajor), int64(h.Rdevminor)
		case cpio.ModeFIFO:
			th.Typeflag = tar.TypeFifo
		case cpio.ModeRegular:
			th.Typeflag, th.Size = tar.TypeReg, h.Size
			if h.Nlink >= 2 {
				if first, ok := links[h.Ino]; ok {
					th.Typeflag, th.Linkname, th.Size = tar.TypeLink, first, 0
				} else {
					links[h.Ino] = h.Name
				}
			}
		default:
			return fmt.Errorf("cpio: %s: file type %#o has no tar equivalent", h.Name, h.Mode&cpio.ModeType)
		}
		if err := tw.WriteHeader(th); err != nil {
			return err
		}
		if th.Size > 0 {
			if _, err := io.Copy(tw, cr); err != nil {
				return err
			}
		}
	}
}
