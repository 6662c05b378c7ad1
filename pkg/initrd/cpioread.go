package initrd

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CPIOReader reads newc cpio archives, one after the other, as the kernel
// does with an initrd: zeros between archives are skipped, and each
// archive's trailer only ends that archive.
type CPIOReader struct {
	r      *bufio.Reader
	off    int64
	remain int64 // data left in the current entry
	pad    int
	// Archive counts the trailers read so far: entries of the first
	// archive have 0.
	Archive int
}

// NewCPIOReader reads the archives in r.
func NewCPIOReader(r io.Reader) *CPIOReader {
	return &CPIOReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next entry's header, skipping what is left of the
// current entry's data, and io.EOF after the last archive.
func (cr *CPIOReader) Next() (*CPIOHeader, error) {
	if err := cr.skip(cr.remain + int64(cr.pad)); err != nil {
		return nil, err
	}
	cr.remain, cr.pad = 0, 0
	for {
		// Zeros between archives, as padding.
		b, err := cr.r.Peek(1)
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if b[0] != 0 {
			break
		}
		cr.r.ReadByte()
		cr.off++
	}
	if cr.off%4 != 0 {
		return nil, fmt.Errorf("cpio: entry at offset %d is not 4-byte aligned", cr.off)
	}
	var hdr [110]byte
	if _, err := io.ReadFull(cr.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("cpio: header at offset %d: %w", cr.off, noEOF(err))
	}
	cr.off += 110
	if string(hdr[:6]) != "070701" {
		return nil, fmt.Errorf("cpio: bad magic %q at offset %d", hdr[:6], cr.off-110)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio: bad header field at offset %d", cr.off-110)
		}
		f[i] = uint32(v)
	}
	namesize := int64(f[11])
	if namesize < 1 || namesize > 1<<16 {
		return nil, fmt.Errorf("cpio: bad name size %d at offset %d", namesize, cr.off-110)
	}
	name := make([]byte, namesize)
	if _, err := io.ReadFull(cr.r, name); err != nil {
		return nil, fmt.Errorf("cpio: name: %w", noEOF(err))
	}
	cr.off += namesize
	if err := cr.skip(int64(pad4(110 + namesize))); err != nil {
		return nil, err
	}
	h := &CPIOHeader{
		Name: string(name[:namesize-1]), Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4],
		Mtime: int64(f[5]), Size: int64(f[6]), Rdevmajor: f[9], Rdevminor: f[10],
	}
	cr.remain, cr.pad = h.Size, pad4(h.Size)
	if h.Name == trailerName {
		cr.Archive++
		if err := cr.skip(cr.remain + int64(cr.pad)); err != nil {
			return nil, err
		}
		cr.remain, cr.pad = 0, 0
		return cr.Next()
	}
	if h.Mode&ModeType == ModeSymlink {
		link := make([]byte, h.Size)
		if _, err := io.ReadFull(cr, link); err != nil {
			return nil, fmt.Errorf("cpio: %s: link target: %w", h.Name, noEOF(err))
		}
		h.Linkname = string(link)
	}
	return h, nil
}

// Read reads the current entry's data.
func (cr *CPIOReader) Read(p []byte) (int, error) {
	if cr.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	n, err := cr.r.Read(p)
	cr.remain -= int64(n)
	cr.off += int64(n)
	if errors.Is(err, io.EOF) && cr.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (cr *CPIOReader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, cr.r, n)
	cr.off += m
	if err != nil {
		return fmt.Errorf("cpio: %w", noEOF(err))
	}
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }

// cpioToTar copies the entries of the cpio archives in r into tw. Hard
// links (same inode, two or more links, within one archive) become tar
// hard links to the first name; a directory written already (in skip or
// earlier) is not written again.
func cpioToTar(tw *tar.Writer, r io.Reader, skip map[string]bool) error {
	cr := NewCPIOReader(r)
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
			Name: h.Name, Mode: int64(h.Mode & ModePerm), Uid: int(h.UID), Gid: int(h.GID),
			ModTime: unixTime(h.Mtime), Format: tar.FormatPAX,
		}
		switch h.Mode & ModeType {
		case ModeDir:
			if dirs[h.Name] {
				continue
			}
			dirs[h.Name] = true
			th.Typeflag, th.Name = tar.TypeDir, h.Name+"/"
		case ModeSymlink:
			th.Typeflag, th.Linkname = tar.TypeSymlink, h.Linkname
		case ModeChar, ModeBlock:
			th.Typeflag = tar.TypeChar
			if h.Mode&ModeType == ModeBlock {
				th.Typeflag = tar.TypeBlock
			}
			th.Devmajor, th.Devminor = int64(h.Rdevmajor), int64(h.Rdevminor)
		case ModeFIFO:
			th.Typeflag = tar.TypeFifo
		case ModeRegular:
			th.Typeflag, th.Size = tar.TypeReg, h.Size
			if h.Nlink >= 2 {
				if first, ok := links[h.Ino]; ok {
					th.Typeflag, th.Linkname, th.Size = tar.TypeLink, first, 0
				} else {
					links[h.Ino] = h.Name
				}
			}
		default:
			return fmt.Errorf("cpio: %s: file type %#o has no tar equivalent", h.Name, h.Mode&ModeType)
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
