package cpio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Writer writes a newc cpio archive as a stream: each header, then
// exactly Size bytes of data through Write.
//
// Hard links follow the convention the kernel and GNU cpio both accept
// when the data comes first: every name of the inode carries the same Ino
// and an Nlink of 2 or more; the first entry carries the data, later ones
// have Size 0. (The kernel links a later name to the first one and opens the
// file without truncating it.)
type Writer struct {
	w       *bufio.Writer
	nextIno uint32
	remain  int64 // data still owed for the current entry
	pad     int   // padding after the current entry's data
	closed  bool
}

// NewWriter returns a writer of a newc archive to w. Close writes the
// trailer; it does not close w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), nextIno: 1}
}

// WriteHeader starts a new entry. The previous entry's data must be
// complete.
func (cw *Writer) WriteHeader(h *Header) error {
	if cw.closed {
		return errors.New("cpio: write after close")
	}
	if cw.remain > 0 {
		return fmt.Errorf("cpio: %d bytes of data missing before %s", cw.remain, h.Name)
	}
	if h.Name == "" || h.Name == trailerName {
		return fmt.Errorf("cpio: invalid entry name %q", h.Name)
	}
	size := h.Size
	switch h.Mode & ModeType {
	case ModeSymlink:
		size = int64(len(h.Linkname))
	case ModeRegular:
	default:
		size = 0
	}
	if size < 0 || size > maxSize {
		return fmt.Errorf("cpio: %s: size %d does not fit in a newc archive (4 GiB max)", h.Name, size)
	}
	if h.Ino == 0 {
		h.Ino = cw.nextIno
		cw.nextIno++
	}
	nlink := h.Nlink
	if nlink == 0 {
		nlink = 1
	}
	if err := cw.header(h, nlink, size); err != nil {
		return err
	}
	cw.remain, cw.pad = size, pad4(size)
	if h.Mode&ModeType == ModeSymlink {
		if _, err := cw.Write([]byte(h.Linkname)); err != nil {
			return err
		}
	}
	return nil
}

// NextIno reserves an inode number that WriteHeader will not hand out.
func (cw *Writer) NextIno() uint32 {
	ino := cw.nextIno
	cw.nextIno++
	return ino
}

func (cw *Writer) header(h *Header, nlink uint32, size int64) error {
	mtime := h.Mtime
	if mtime < 0 || mtime > maxSize {
		mtime = 0
	}
	// 110 bytes of header, the name with its NUL, padded to 4 bytes.
	_, err := fmt.Fprintf(cw.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00",
		h.Ino, h.Mode, h.UID, h.GID, nlink, uint32(mtime), uint32(size),
		0, 0, h.Rdevmajor, h.Rdevminor, len(h.Name)+1, 0, h.Name)
	if err != nil {
		return fmt.Errorf("cpio: write header of %s: %w", h.Name, err)
	}
	return cw.zeros(pad4(int64(110 + len(h.Name) + 1)))
}

// Write writes data of the current entry; it refuses more than the header
// announced.
func (cw *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > cw.remain {
		return 0, fmt.Errorf("cpio: %d bytes written past the end of the entry", int64(len(p))-cw.remain)
	}
	n, err := cw.w.Write(p)
	cw.remain -= int64(n)
	if err == nil && cw.remain == 0 {
		err = cw.zeros(cw.pad)
		cw.pad = 0
	}
	return n, err
}

// Close writes the trailer and flushes. The archive is not padded to a
// block size: the kernel needs only 4-byte alignment, which also lets
// archives be concatenated.
func (cw *Writer) Close() error {
	if cw.closed {
		return nil
	}
	if cw.remain > 0 {
		return fmt.Errorf("cpio: %d bytes of data missing at close", cw.remain)
	}
	cw.closed = true
	if err := cw.header(&Header{Name: trailerName}, 1, 0); err != nil {
		return err
	}
	if err := cw.w.Flush(); err != nil {
		return fmt.Errorf("cpio: flush: %w", err)
	}
	return nil
}

func (cw *Writer) zeros(n int) error {
	var z [4]byte
	_, err := cw.w.Write(z[:n])
	return err
}

func pad4(n int64) int { return int((4 - n%4) % 4) }
