// Package uki builds a unified kernel image: systemd-stub (a small UEFI
// PE program) with the kernel, initrd, command line and os-release added
// as PE sections. UEFI firmware starts the stub, which finds the sections
// in its own loaded image and boots the kernel with them: one file that
// boots, and the one file Secure Boot would sign.
//
// The layout follows systemd's ukify: new section headers go in the room
// the stub leaves after its section table, each new section's address is
// the end of the previous one rounded up to SectionAlignment, its file
// data is appended at FileAlignment, and SizeOfImage and the checksum are
// made anew.
package uki

import (
	"bufio"
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Section is one section to add: Name is at most 8 bytes, e.g. ".linux";
// Size bytes are read from Open when the image is written, so a large
// initrd is streamed, never held in memory.
type Section struct {
	Name string
	Size int64
	Open func() (io.ReadCloser, error)
}

// Bytes is a section whose contents are in memory.
func Bytes(name string, b []byte) Section {
	return Section{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// File is a section whose contents are the file at p, of size bytes.
func File(name, p string, size int64) Section {
	return Section{Name: name, Size: size, Open: func() (io.ReadCloser, error) { return os.Open(p) }}
}

// Parts are the contents of a unified kernel image.
type Parts struct {
	Kernel    Section // a bzImage with an EFI handover entry; its name is set
	Initrd    Section
	Cmdline   string
	OSRelease string // os-release(5) text: what a boot menu shows
}

// Write writes the stub with the parts added to w, in the order ukify
// uses (.linux last).
func Write(w io.Writer, stub []byte, p Parts) error {
	if p.Kernel.Size == 0 {
		return errors.New("uki: no kernel")
	}
	p.Kernel.Name, p.Initrd.Name = ".linux", ".initrd"
	if p.Initrd.Open == nil {
		p.Initrd = Bytes(".initrd", nil)
	}
	return AddSections(w, stub, []Section{
		Bytes(".osrel", []byte(p.OSRelease)),
		Bytes(".cmdline", []byte(p.Cmdline)),
		p.Initrd,
		p.Kernel,
	})
}

// Offsets in the PE32+ headers (the PE/COFF specification).
const (
	peOffsetField      = 0x3c // e_lfanew in the DOS header
	coffSize           = 20
	sectionHeaderSize  = 40
	optMagicPE32Plus   = 0x20b
	optSizeOfInitData  = 8
	optSectionAlign    = 32
	optFileAlign       = 36
	optSizeOfImage     = 56
	optSizeOfHeaders   = 60
	optCheckSum        = 64
	optDataDirectories = 112
	dirSecurity        = 4 // certificate table: a signed stub
	// initialized data, readable: what ukify gives its sections.
	sectionFlags = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
)

// AddSections writes the PE32+ image stub with secs appended to w. The
// sections are read twice: once for the checksum, which is in the
// headers, once to be written.
func AddSections(w io.Writer, stub []byte, secs []Section) error {
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		return fmt.Errorf("uki: stub is not a PE file: %w", err)
	}
	defer f.Close()
	if _, ok := f.OptionalHeader.(*pe.OptionalHeader64); !ok {
		return errors.New("uki: stub is not a PE32+ (64-bit) image")
	}
	if len(f.Sections) == 0 {
		return errors.New("uki: stub has no sections")
	}
	for _, s := range secs {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return fmt.Errorf("uki: section name %q: want 1 to 8 bytes", s.Name)
		}
		if f.Section(s.Name) != nil {
			return fmt.Errorf("uki: stub already has a %s section", s.Name)
		}
	}

	hdr := append([]byte(nil), stub...)
	out := hdr
	le := binary.LittleEndian
	peOff := int(le.Uint32(out[peOffsetField:]))
	coff := peOff + 4
	opt := coff + coffSize
	if le.Uint16(out[opt:]) != optMagicPE32Plus {
		return errors.New("uki: stub's optional header is not PE32+")
	}
	sectAlign := le.Uint32(out[opt+optSectionAlign:])
	fileAlign := le.Uint32(out[opt+optFileAlign:])
	if sectAlign == 0 || fileAlign == 0 {
		return errors.New("uki: stub has a zero alignment")
	}
	if dirs := le.Uint32(out[opt+108:]); dirs > dirSecurity {
		if size := le.Uint32(out[opt+optDataDirectories+8*dirSecurity+4:]); size != 0 {
			return errors.New("uki: stub is signed; sections cannot be added to a signed image (sign the UKI instead)")
		}
	}
	nsec := int(le.Uint16(out[coff+2:]))
	table := opt + int(le.Uint16(out[coff+16:]))
	headersEnd := int(le.Uint32(out[opt+optSizeOfHeaders:]))
	room := headersEnd
	for _, s := range f.Sections {
		if s.Offset != 0 && int(s.Offset) < room {
			room = int(s.Offset)
		}
	}
	newEnd := table + (nsec+len(secs))*sectionHeaderSize
	if newEnd > room {
		return fmt.Errorf("uki: stub's headers have room for %d more sections, %d asked",
			(room-table)/sectionHeaderSize-nsec, len(secs))
	}
	// The room must really be free: a stub that keeps data there would be
	// corrupted.
	for _, b := range out[table+nsec*sectionHeaderSize : newEnd] {
		if b != 0 {
			return errors.New("uki: stub's header room after the section table is not empty")
		}
	}

	last := f.Sections[len(f.Sections)-1]
	vma := roundUp(last.VirtualAddress+max(last.VirtualSize, last.Size), sectAlign)
	initData := le.Uint32(out[opt+optSizeOfInitData:])
	// Where each section's data goes: appended after the stub's bytes.
	end := int64(len(out))
	offs := make([]int64, len(secs))
	for i, s := range secs {
		if s.Size < 0 || s.Size > int64(1<<32-1-vma) {
			return fmt.Errorf("uki: section %s is too big (%d bytes)", s.Name, s.Size)
		}
		size := uint32(s.Size)
		off := roundUp64(end, int64(fileAlign))
		raw := roundUp(size, fileAlign)
		if off > 1<<32-1 {
			return fmt.Errorf("uki: image too big at section %s", s.Name)
		}
		offs[i] = off
		end = off + int64(raw)

		h := out[table+(nsec+i)*sectionHeaderSize:]
		copy(h[0:8], s.Name)
		le.PutUint32(h[8:], size)         // VirtualSize
		le.PutUint32(h[12:], vma)         // VirtualAddress
		le.PutUint32(h[16:], raw)         // SizeOfRawData
		le.PutUint32(h[20:], uint32(off)) // PointerToRawData
		le.PutUint32(h[36:], sectionFlags)
		initData += raw
		vma = roundUp(vma+size, sectAlign)
	}
	le.PutUint16(out[coff+2:], uint16(nsec+len(secs)))
	le.PutUint32(out[opt+optSizeOfInitData:], initData)
	le.PutUint32(out[opt+optSizeOfImage:], vma)
	le.PutUint32(out[opt+optCheckSum:], 0)

	// The whole file, as a stream: the stub, then each section padded.
	stream := func(dst io.Writer) error {
		if _, err := dst.Write(hdr); err != nil {
			return err
		}
		pos := int64(len(hdr))
		for i, s := range secs {
			if _, err := dst.Write(make([]byte, offs[i]-pos)); err != nil {
				return err
			}
			r, err := s.Open()
			if err != nil {
				return fmt.Errorf("uki: section %s: %w", s.Name, err)
			}
			n, err := io.Copy(dst, io.LimitReader(r, s.Size))
			r.Close()
			if err != nil {
				return fmt.Errorf("uki: section %s: %w", s.Name, err)
			}
			if n != s.Size {
				return fmt.Errorf("uki: section %s: %d bytes, want %d", s.Name, n, s.Size)
			}
			raw := int64(roundUp(uint32(s.Size), fileAlign))
			if _, err := dst.Write(make([]byte, raw-s.Size)); err != nil {
				return err
			}
			pos = offs[i] + raw
		}
		return nil
	}
	var sum checksummer
	if err := stream(&sum); err != nil {
		return err
	}
	le.PutUint32(hdr[opt+optCheckSum:], sum.value())
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := stream(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// checksummer computes the PE image checksum of what is written to it:
// 16-bit words added with the carries folded back, then the file's length.
// The checksum field must be zero in what is written.
type checksummer struct {
	sum  uint64
	n    int64
	odd  bool // a byte is pending
	last byte
}

func (c *checksummer) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	i := 0
	if c.odd && len(p) > 0 {
		c.add(uint64(c.last) | uint64(p[0])<<8)
		c.odd, i = false, 1
	}
	for ; i+1 < len(p); i += 2 {
		c.sum += uint64(p[i]) | uint64(p[i+1])<<8
		if c.sum > 1<<48 {
			c.sum = (c.sum & 0xffff) + (c.sum >> 16)
		}
	}
	if i < len(p) {
		c.odd, c.last = true, p[i]
	}
	return len(p), nil
}

func (c *checksummer) add(v uint64) { c.sum += v }

func (c *checksummer) value() uint32 {
	s := c.sum
	if c.odd {
		s += uint64(c.last)
	}
	for s>>16 != 0 {
		s = (s & 0xffff) + (s >> 16)
	}
	return uint32(s) + uint32(c.n)
}

// checksum is the PE checksum of b with the 4 bytes at skip taken as zero.
func checksum(b []byte, skip int) uint32 {
	var c checksummer
	c.Write(b[:skip])
	c.Write(make([]byte, 4))
	c.Write(b[skip+4:])
	return c.value()
}

func roundUp(n, align uint32) uint32 { return (n + align - 1) / align * align }

func roundUp64(n, align int64) int64 { return (n + align - 1) / align * align }

// SectionData returns the contents of the named section of a PE image
// (VirtualSize bytes), for tests and for checking a build.
func SectionData(img []byte, name string) ([]byte, error) {
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(name)
	if s == nil {
		return nil, fmt.Errorf("no %s section", name)
	}
	b, err := io.ReadAll(io.LimitReader(s.Open(), int64(s.VirtualSize)))
	return b, err
}
