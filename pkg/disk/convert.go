package disk

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"

	"github.com/klauspost/compress/gzip"
)

// qemuImg converts the raw disk at src to format at dst with qemu-img.
// No Go library writes qcow2 or VMDK well today; qemu-img is the
// reference. For vmdk, id fixes the descriptor's random CID.
func qemuImg(src, dst, format string, id []byte) error {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("qemu-img not found: install Debian's qemu-utils package (apt-get install qemu-utils) for the %s formats", format)
	}
	args := []string{"convert", "-q", "-f", "raw", "-O", format}
	if format == "vmdk" {
		args = append(args, "-o", "subformat=monolithicSparse")
	}
	out, err := exec.Command(bin, append(args, src, dst)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img convert to %s: %w: %s", format, err, bytes.TrimSpace(out))
	}
	if format == "vmdk" {
		return fixVMDKCID(dst, id)
	}
	return nil
}

var vmdkCID = regexp.MustCompile(`(?m)^CID=[0-9a-f]{1,8}$`)

// fixVMDKCID replaces the random content ID qemu-img writes into a sparse
// VMDK's text descriptor by one derived from the content. qemu-img prints
// it without leading zeros, so the text is rewritten whole within its
// zero-padded region (the header's descriptor offset and size, in sectors).
func fixVMDKCID(p string, id []byte) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 512)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return err
	}
	if string(hdr[:4]) != "KDMV" {
		return fmt.Errorf("%s: not a sparse VMDK", p)
	}
	off := int64(binary.LittleEndian.Uint64(hdr[28:])) * 512
	size := int64(binary.LittleEndian.Uint64(hdr[36:])) * 512
	if off == 0 || size == 0 || size > 1<<20 {
		return fmt.Errorf("%s: no descriptor in the VMDK header", p)
	}
	desc := make([]byte, size)
	if _, err := f.ReadAt(desc, off); err != nil {
		return err
	}
	text := desc
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		text = desc[:i]
	}
	if !vmdkCID.Match(text) {
		return fmt.Errorf("%s: no CID in the VMDK descriptor", p)
	}
	text = vmdkCID.ReplaceAll(text, []byte(fmt.Sprintf("CID=%08x", binary.BigEndian.Uint32(id)|0x10000000)))
	if int64(len(text)) > size {
		return fmt.Errorf("%s: VMDK descriptor overflows its region", p)
	}
	out := make([]byte, size)
	copy(out, text)
	if _, err := f.WriteAt(out, off); err != nil {
		return err
	}
	return f.Close()
}

// writeVHD writes the raw disk at src as a fixed VHD: the raw bytes, then
// the 512-byte footer. Azure takes fixed VHDs whose virtual size is a
// whole number of MiB; raw-efi's size is.
func writeVHD(src, dst string, mtimeSec int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size%MiB != 0 {
		return fmt.Errorf("disk is %d bytes, not a whole number of MiB as Azure requires", size)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if _, err := out.Write(vhdFooter(size, mtimeSec, src)); err != nil {
		return err
	}
	return out.Close()
}

// vhdEpoch is 2000-01-01, where VHD time stamps count from.
const vhdEpoch = 946684800

// vhdFooter is the VHD footer of a fixed disk of size bytes (Microsoft's
// Virtual Hard Disk Image Format Specification).
func vhdFooter(size, mtimeSec int64, seed string) []byte {
	b := make([]byte, 512)
	be := binary.BigEndian
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // features: reserved bit
	be.PutUint32(b[12:], 0x10000)    // format version 1.0
	be.PutUint64(b[16:], ^uint64(0)) // data offset: none, fixed disk
	be.PutUint32(b[24:], uint32(max(mtimeSec-vhdEpoch, 0)))
	copy(b[28:], "keel")
	be.PutUint32(b[32:], 0x10000)
	copy(b[36:], "Wi2k")
	be.PutUint64(b[40:], uint64(size))
	be.PutUint64(b[48:], uint64(size))
	c, h, s := vhdGeometry(size / 512)
	be.PutUint16(b[56:], c)
	b[58], b[59] = h, s
	be.PutUint32(b[60:], 2) // fixed
	// The unique ID: the footer's own fields and a digest of the disk's
	// first sectors (its GPT GUIDs are derived from the content).
	id := vhdUniqueID(seed, b)
	copy(b[68:84], id)
	var sum uint32
	for _, x := range b {
		sum += uint32(x)
	}
	be.PutUint32(b[64:], ^sum)
	return b
}

// vhdGeometry is the spec's CHS for a number of 512-byte sectors.
func vhdGeometry(sectors int64) (uint16, byte, byte) {
	if sectors > 65535*16*255 {
		sectors = 65535 * 16 * 255
	}
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return uint16(cth / heads), byte(heads), byte(spt)
}

func vhdUniqueID(src string, footer []byte) []byte {
	h := sha256.New()
	h.Write(footer)
	if f, err := os.Open(src); err == nil {
		io.CopyN(h, f, 1<<20)
		f.Close()
	}
	return h.Sum(nil)[:16]
}

// writeGCP writes the raw disk at src as disk.raw in a gzip'd tar in GNU
// format, the way GCE's image import requires.
func writeGCP(src, dst string, mtimeSec int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, err := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if err != nil {
		return err
	}
	// The gzip header carries no name and no time: the same disk gives
	// the same bytes.
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: "disk.raw", Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(),
		ModTime: mtime(mtimeSec), Format: tar.FormatGNU}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, in); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}
