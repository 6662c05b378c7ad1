package disk

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/keel-os/keel/pkg/bootimage"
)

// isolinuxConfig boots the kernel with the initrd and command line on
// the serial console, at once.
func isolinuxConfig(cmdline string) []byte {
	return []byte("SERIAL 0 115200\nCONSOLE 0\nPROMPT 0\nTIMEOUT 0\nDEFAULT keel\nLABEL keel\n" +
		"  KERNEL /BOOT/KERNEL\n  INITRD /BOOT/INITRD.IMG\n  APPEND " + cmdline + "\n")
}

// writeISOBIOS writes an isolinux CD: isolinux.bin as a no-emulation El
// Torito image with a boot info table, ldlinux.c32 and a config beside
// it, the kernel and initrd under /BOOT. With hybrid, the ISO also gets
// an isohybrid MBR, so that the same bytes boot from a disk: that is
// raw-bios (see hybridMBR for why not syslinux on FAT).
func (w *writer) writeISOBIOS(p string, hybrid bool) error {
	cmdline, err := w.cmdline()
	if err != nil {
		return err
	}
	isolinux := w.in.Loaders[bootimage.Isolinux]
	if hybrid && (len(isolinux) < 0x44 || binary.LittleEndian.Uint32(isolinux[0x40:]) != isohybridMagic) {
		return fmt.Errorf("keel/boot's /%s is not a hybrid-capable isolinux.bin", bootimage.Isolinux)
	}
	err = w.writeISO(p, []isoFile{
		{path: "/ISOLINUX/ISOLINUX.BIN", data: isolinux},
		{path: "/ISOLINUX/LDLINUX.C32", data: w.in.Loaders[bootimage.Ldlinux]},
		{path: "/ISOLINUX/ISOLINUX.CFG", data: isolinuxConfig(cmdline)},
		{path: "/BOOT/KERNEL", src: w.in.Kernel},
		{path: "/BOOT/INITRD.IMG", src: w.in.Initrd},
	}, &iso9660.ElTorito{
		BootCatalog: "/ISOLINUX/BOOT.CAT",
		Entries: []*iso9660.ElToritoEntry{{
			Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: "/ISOLINUX/ISOLINUX.BIN",
			BootTable: true, LoadSegment: 0,
		}},
	})
	if err != nil || !hybrid {
		return err
	}
	return hybridMBR(p, w.in.Loaders[bootimage.IsohybridMBR], w.id("mbr signature"))
}

// isohybridMagic is at offset 0x40 of an isolinux.bin that can start
// from a hard disk.
const isohybridMagic = 0x7078c0fb

// Geometry isohybrid pretends: 64 heads, 32 sectors, so a cylinder is 1 MiB.
const (
	hybridHeads   = 64
	hybridSectors = 32
)

// hybridMBR makes the ISO at p a BIOS-bootable disk, as syslinux's
// isohybrid does: the isohdpfx MBR code, which loads isolinux.bin from the
// LBA stored at byte 432, one bootable partition over the whole image, and
// the image padded to whole 1 MiB cylinders.
//
// Why not syslinux on a FAT partition: its installer patches the sector
// list of ldlinux.sys into the boot sector, and Debian ships ldlinux.sys
// and ldlinux.bss only inside the syslinux and extlinux installer
// binaries, not as files; isolinux.bin and isohdpfx.bin are files.
func hybridMBR(p string, code, id []byte) error {
	if len(code) != 432 {
		return fmt.Errorf("isohybrid MBR code is %d bytes, want 432", len(code))
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// The boot catalog's initial entry says where isolinux.bin is.
	bootLBA, _, err := elToritoImage(f)
	if err != nil {
		return err
	}

	st, err := f.Stat()
	if err != nil {
		return err
	}
	const cylinder = hybridHeads * hybridSectors * 512
	size := roundUp(st.Size(), cylinder)
	if err := f.Truncate(size); err != nil {
		return err
	}
	cylinders := size / cylinder
	if cylinders > 1024 {
		cylinders = 1024
	}
	mbr := make([]byte, 512)
	copy(mbr, code)
	le := binary.LittleEndian
	le.PutUint32(mbr[432:], bootLBA*4)
	copy(mbr[440:444], id)
	e := mbr[446:462]
	e[0] = 0x80                // bootable
	e[1], e[2], e[3] = 0, 1, 0 // CHS of sector 0
	e[4] = 0x17                // isohybrid's partition type
	e[5] = hybridHeads - 1     // CHS of the last sector
	e[6] = byte(hybridSectors + ((cylinders-1)&0x300)>>2)
	e[7] = byte((cylinders - 1) & 0xff)
	le.PutUint32(e[8:], 0)
	le.PutUint32(e[12:], uint32(size/512))
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	return f.Close()
}
