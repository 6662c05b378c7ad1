package cpio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Reader reads newc cpio archives, one after the other, as the kernel
// does with an initrd: zeros between archives are skipped, and each
// archive's trailer only ends that archive.
type Reader struct {
	r      *bufio.Reader
	off    int64
	remain int64 // data left in the current entry
	pad    int
	// Archive counts the trailers read so far: entries of the first
	// archive have 0.
	Archive int
}

// NewReader reads the archives in r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next entry's header, skipping what is left of the
// current entry's data, and io.EOF after the last archive.
func (cr *Reader) Next() (*Header, error) {
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
	h := &Header{
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
func (cr *Reader) Read(p []byte) (int, error) {
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

func (cr *Reader) skip(n int64) error {
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
