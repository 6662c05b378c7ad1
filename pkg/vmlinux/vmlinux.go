// Package vmlinux takes the uncompressed ELF kernel (vmlinux) out of an
// x86 bzImage, for the VMMs that boot an ELF kernel directly (Firecracker,
// Cloud Hypervisor).
//
// A bzImage is real-mode setup code, then a small decompressor whose
// payload is the compressed vmlinux. The boot protocol's setup header
// says where: payload_offset and payload_length, counted from the start
// of the protected-mode code, which follows the (setup_sects+1) sectors
// of setup. The kernel's build appends the uncompressed size as 4 bytes
// to every payload, whatever the codec.
package vmlinux

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Setup header fields (Documentation/arch/x86/boot.rst).
const (
	offSetupSects   = 0x1f1
	offHeaderMagic  = 0x202 // "HdrS"
	offVersion      = 0x206
	offPayloadOff   = 0x248
	offPayloadLen   = 0x24c
	offPrefAddress  = 0x258
	minVersion      = 0x208 // payload fields exist from boot protocol 2.08
	maxVmlinuxBytes = 1 << 30
)

// Header is what the setup header says about the payload.
type Header struct {
	Offset, Length int64  // the payload in the bzImage file
	PrefAddress    uint64 // where the kernel wants to run: its ELF entry
	Codec          string
}

// ReadHeader parses the setup header of a bzImage.
func ReadHeader(bz []byte) (Header, error) {
	le := binary.LittleEndian
	if len(bz) < offPrefAddress+8 || string(bz[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return Header{}, errors.New("not a bzImage: no HdrS setup header")
	}
	if v := le.Uint16(bz[offVersion:]); v < minVersion {
		return Header{}, fmt.Errorf("bzImage boot protocol %#x is older than 2.08: no payload fields", v)
	}
	sects := int64(bz[offSetupSects])
	if sects == 0 {
		sects = 4
	}
	h := Header{
		Offset:      (sects+1)*512 + int64(le.Uint32(bz[offPayloadOff:])),
		Length:      int64(le.Uint32(bz[offPayloadLen:])),
		PrefAddress: le.Uint64(bz[offPrefAddress:]),
	}
	if h.Length < 4 || h.Offset+h.Length > int64(len(bz)) {
		return Header{}, fmt.Errorf("bzImage payload %d+%d is outside the file (%d bytes)", h.Offset, h.Length, len(bz))
	}
	h.Codec = codec(bz[h.Offset:])
	return h, nil
}

// codec names the compression from the payload's magic number.
func codec(p []byte) string {
	for _, c := range []struct {
		magic []byte
		name  string
	}{
		{[]byte{0x1f, 0x8b}, "gzip"},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
		{[]byte{0x02, 0x21, 0x4c, 0x18}, "lz4"},
		{[]byte{'B', 'Z', 'h'}, "bzip2"},
		{[]byte{0x89, 'L', 'Z', 'O'}, "lzo"},
		{[]byte{0x5d, 0, 0}, "lzma"},
	} {
		if bytes.HasPrefix(p, c.magic) {
			return c.name
		}
	}
	return "unknown"
}

// Extract returns the vmlinux ELF inside the bzImage bz.
func Extract(bz []byte) ([]byte, error) {
	h, err := ReadHeader(bz)
	if err != nil {
		return nil, err
	}
	payload := bz[h.Offset : h.Offset+h.Length-4]
	size := int64(binary.LittleEndian.Uint32(bz[h.Offset+h.Length-4:]))
	var r io.Reader
	src := bytes.NewReader(payload)
	switch h.Codec {
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("bzImage gzip payload: %w", err)
		}
		zr.Multistream(false)
		r = zr
	case "xz":
		zr, err := xz.NewReader(bufio.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("bzImage xz payload: %w", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(src, zstd.WithDecoderMaxMemory(maxVmlinuxBytes))
		if err != nil {
			return nil, fmt.Errorf("bzImage zstd payload: %w", err)
		}
		defer zr.Close()
		r = zr
	case "lz4":
		// The kernel's lz4 is the legacy frame, which lz4's reader knows.
		r = lz4.NewReader(src)
	default:
		return nil, fmt.Errorf("bzImage payload is %s-compressed: keel reads gzip, xz, zstd and lz4 kernels", h.Codec)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxVmlinuxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decompress bzImage %s payload: %w", h.Codec, err)
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("bzImage %s payload gave %d bytes, its trailer says %d", h.Codec, len(out), size)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("bzImage payload is not an ELF kernel: %w", err)
	}
	f.Close()
	return out, nil
}
