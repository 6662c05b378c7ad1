// Package ukitest makes a minimal systemd-stub stand-in for tests of
// packages that build unified kernel images without the real stub.
package ukitest

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
)

// Stub is a minimal PE32+ EFI application: headers in 0x400 bytes,
// one .text section at 0x1000.
func Stub() []byte {
	b := make([]byte, 0x600)
	le := binary.LittleEndian
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := 0x44
	le.PutUint16(b[coff:], pe.IMAGE_FILE_MACHINE_AMD64)
	le.PutUint16(b[coff+2:], 1)
	le.PutUint16(b[coff+16:], 240)
	le.PutUint16(b[coff+18:], 0x22)
	opt := coff + 20
	le.PutUint16(b[opt:], 0x20b)
	le.PutUint32(b[opt+32:], 0x1000) // SectionAlignment
	le.PutUint32(b[opt+36:], 0x200)  // FileAlignment
	le.PutUint32(b[opt+56:], 0x2000) // SizeOfImage
	le.PutUint32(b[opt+60:], 0x400)  // SizeOfHeaders
	le.PutUint16(b[opt+68:], 10)     // EFI application
	le.PutUint32(b[opt+108:], 16)
	sec := opt + 240
	copy(b[sec:], ".text")
	le.PutUint32(b[sec+8:], 0x123)
	le.PutUint32(b[sec+12:], 0x1000)
	le.PutUint32(b[sec+16:], 0x200)
	le.PutUint32(b[sec+20:], 0x400)
	le.PutUint32(b[sec+36:], pe.IMAGE_SCN_CNT_CODE|pe.IMAGE_SCN_MEM_EXECUTE|pe.IMAGE_SCN_MEM_READ)
	copy(b[0x400:], bytes.Repeat([]byte{0xcc}, 0x123))
	return b
}
