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
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Section is one section to add: Name is at most 8 bytes, e.g. ".linux".
type Section struct {
	Name string
	Data []byte
}

// Parts are the contents of a unified kernel image.
type Parts struct {
	Kernel    []byte // a bzImage with an EFI handover entry
	Initrd    []byte
	Cmdline   string
	OSRelease string // os-release(5) text: what a boot menu shows
}

// Build returns the stub with the parts added, in the order ukify uses
// (.linux last).
func Build(stub []byte, p Parts) ([]byte, error) {
	if len(p.Kernel) == 0 {
		return nil, errors.New("uki: no kernel")
	}
	return AddSections(stub, []Section{
		{".osrel", []byte(p.OSRelease)},
		{".cmdline", []byte(p.Cmdline)},
		{".initrd", p.Initrd},
		{".linux", p.Kernel},
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

// AddSections appends sections to the PE32+ image stub.
func AddSections(stub []byte, secs []Section) ([]byte, error) {
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		return nil, fmt.Errorf("uki: stub is not a PE file: %w", err)
	}
	defer f.Close()
	if _, ok := f.OptionalHeader.(*pe.OptionalHeader64); !ok {
		return nil, errors.New("uki: stub is not a PE32+ (64-bit) image")
	}
	if len(f.Sections) == 0 {
		return nil, errors.New("uki: stub has no sections")
	}
	for _, s := range secs {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("uki: section name %q: want 1 to 8 bytes", s.Name)
		}
		if f.Section(s.Name) != nil {
			return nil, fmt.Errorf("uki: stub already has a %s section", s.Name)
		}
	}

	out := append([]byte(nil), stub...)
	le := binary.LittleEndian
	peOff := int(le.Uint32(out[peOffsetField:]))
	coff := peOff + 4
	opt := coff + coffSize
	if le.Uint16(out[opt:]) != optMagicPE32Plus {
		return nil, errors.New("uki: stub's optional header is not PE32+")
	}
	sectAlign := le.Uint32(out[opt+optSectionAlign:])
	fileAlign := le.Uint32(out[opt+optFileAlign:])
	if sectAlign == 0 || fileAlign == 0 {
		return nil, errors.New("uki: stub has a zero alignment")
	}
	if dirs := le.Uint32(out[opt+108:]); dirs > dirSecurity {
		if size := le.Uint32(out[opt+optDataDirectories+8*dirSecurity+4:]); size != 0 {
			return nil, errors.New("uki: stub is signed; sections cannot be added to a signed image (sign the UKI instead)")
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
		return nil, fmt.Errorf("uki: stub's headers have room for %d more sections, %d asked",
			(room-table)/sectionHeaderSize-nsec, len(secs))
	}
	// The room must really be free: a stub that keeps data there would be
	// corrupted.
	for _, b := range out[table+nsec*sectionHeaderSize : newEnd] {
		if b != 0 {
			return nil, errors.New("uki: stub's header room after the section table is not empty")
		}
	}

	last := f.Sections[len(f.Sections)-1]
	vma := roundUp(last.VirtualAddress+max(last.VirtualSize, last.Size), sectAlign)
	initData := le.Uint32(out[opt+optSizeOfInitData:])
	for i, s := range secs {
		size := uint32(len(s.Data))
		if uint64(len(s.Data)) > 1<<32-1-uint64(vma) {
			return nil, fmt.Errorf("uki: section %s is too big (%d bytes)", s.Name, len(s.Data))
		}
		off := roundUp(uint32(len(out)), fileAlign)
		raw := roundUp(size, fileAlign)
		out = append(out, make([]byte, int(off)-len(out))...)
		out = append(out, s.Data...)
		out = append(out, make([]byte, raw-size)...)

		h := out[table+(nsec+i)*sectionHeaderSize:]
		copy(h[0:8], s.Name)
		le.PutUint32(h[8:], size) // VirtualSize
		le.PutUint32(h[12:], vma) // VirtualAddress
		le.PutUint32(h[16:], raw) // SizeOfRawData
		le.PutUint32(h[20:], off) // PointerToRawData
		le.PutUint32(h[36:], sectionFlags)
		initData += raw
		vma = roundUp(vma+size, sectAlign)
	}
	le.PutUint16(out[coff+2:], uint16(nsec+len(secs)))
	le.PutUint32(out[opt+optSizeOfInitData:], initData)
	le.PutUint32(out[opt+optSizeOfImage:], vma)
	le.PutUint32(out[opt+optCheckSum:], 0)
	le.PutUint32(out[opt+optCheckSum:], checksum(out, opt+optCheckSum))
	return out, nil
}

// checksum is the PE image checksum: 16-bit one's-complement-style sum of
// the file's words with carries folded, skipping the checksum field, plus
// the file's length.
func checksum(b []byte, skip int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == skip || i == skip+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

func roundUp(n, align uint32) uint32 { return (n + align - 1) / align * align }

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
