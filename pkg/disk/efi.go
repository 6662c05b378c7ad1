package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keel-os/keel/pkg/bootimage"
	"github.com/keel-os/keel/pkg/uki"
	"github.com/keel-os/keel/pkg/vmlinux"
)

// EFIBootPath is where UEFI firmware looks for a removable disk's loader.
const EFIBootPath = "/EFI/BOOT/BOOTX64.EFI"

// theUKI writes the unified kernel image once per writer, into tmp, and
// returns its path and size. The kernel and initrd are streamed into it.
func (w *writer) theUKI() (string, int64, error) {
	p := filepath.Join(w.tmp, "uki.efi")
	if w.ukiSize > 0 {
		return p, w.ukiSize, nil
	}
	cmdline, err := w.cmdline()
	if err != nil {
		return "", 0, err
	}
	kernel, err := os.Stat(w.in.Kernel)
	if err != nil {
		return "", 0, err
	}
	initrd, err := os.Stat(w.in.Initrd)
	if err != nil {
		return "", 0, err
	}
	name := w.in.Name
	if name == "" {
		name = "keel"
	}
	osrel := fmt.Sprintf("ID=keel\nNAME=keel\nPRETTY_NAME=%q\n", "keel "+name)
	f, err := os.Create(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	err = uki.Write(f, w.in.Loaders[bootimage.EFIStub], uki.Parts{
		Kernel:  uki.File(".linux", w.in.Kernel, kernel.Size()),
		Initrd:  uki.File(".initrd", w.in.Initrd, initrd.Size()),
		Cmdline: cmdline, OSRelease: osrel,
	})
	if err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", 0, err
	}
	w.ukiSize = st.Size()
	return p, w.ukiSize, nil
}

func (w *writer) writeUKI(p string) error {
	src, _, err := w.theUKI()
	if err != nil {
		return err
	}
	return os.Link(src, p)
}

func (w *writer) writeVmlinux(p string) error {
	bz, err := os.ReadFile(w.in.Kernel)
	if err != nil {
		return err
	}
	elf, err := vmlinux.Extract(bz)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", w.in.Kernel, err)
	}
	return os.WriteFile(p, elf, 0o644)
}

// minFAT32 keeps a FAT32 volume above 65525 clusters of 512 bytes: UEFI's
// FAT driver tells FAT12/16/32 apart by the cluster count alone.
const minFAT32 = 40 * MiB

// espSize is the size of a FAT32 volume for files of n bytes: the FATs
// take 8 bytes per 512-byte cluster, plus slack and the room asked for.
func espSize(n, extra int64) int64 {
	return max(roundUp(n+n/32+4*MiB, MiB), minFAT32) + roundUp(extra, MiB)
}

// fatFile is a file to put into a FAT volume, from a file on disk.
type fatFile struct {
	path string
	src  string
}

// fillFAT creates a FAT32 file system on partition part of d (0: the whole
// image) and writes files into it; serial becomes its volume ID.
func fillFAT(d *disk.Disk, part int, label string, files []fatFile) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: part, FSType: filesystem.TypeFat32, VolumeLabel: label, Reproducible: true})
	if err != nil {
		return fmt.Errorf("make FAT32: %w", err)
	}
	for _, f := range files {
		if err := fs.Mkdir(path.Dir(f.path)); err != nil {
			return fmt.Errorf("FAT mkdir %s: %w", path.Dir(f.path), err)
		}
		fh, err := fs.OpenFile(f.path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("FAT create %s: %w", f.path, err)
		}
		if err := copyFrom(fh, f.src); err != nil {
			return fmt.Errorf("FAT write %s: %w", f.path, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("FAT write %s: %w", f.path, err)
		}
	}
	return nil
}

// setFATSerial writes serial into the FAT32 boot sector at off and its
// backup (sector 6): go-diskfs's reproducible mode leaves it zero.
func setFATSerial(p string, off int64, serial []byte) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, sector := range []int64{0, 6} {
		if _, err := f.WriteAt(serial[:4], off+sector*512+0x43); err != nil {
			return err
		}
	}
	return f.Close()
}

// writeRawEFI writes a GPT disk whose one partition, the EFI system
// partition from 1 MiB, holds the UKI as the removable-media loader.
func (w *writer) writeRawEFI(p string) error {
	img, ukiSize, err := w.theUKI()
	if err != nil {
		return err
	}
	esp := espSize(ukiSize, w.in.Extra)
	const start = MiB
	// 1 MiB in front (GPT and alignment), 1 MiB behind (backup GPT).
	d, err := diskfs.Create(p, start+esp+MiB, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	defer closeDisk(d)
	table := &gpt.Table{
		LogicalSectorSize:  512,
		PhysicalSectorSize: 512,
		ProtectiveMBR:      true,
		GUID:               guid(w.id("gpt disk")),
		Partitions: []*gpt.Partition{{
			Index: 1, Start: start / 512, End: uint64((start+esp)/512 - 1), Type: gpt.EFISystemPartition,
			Name: "EFI System Partition", GUID: guid(w.id("gpt esp")),
		}},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	if err := fillFAT(d, 1, "KEEL-ESP", []fatFile{{EFIBootPath, img}}); err != nil {
		return err
	}
	if err := closeDisk(d); err != nil {
		return err
	}
	return setFATSerial(p, start, w.id("esp serial"))
}

// efiImage writes a FAT32 image holding the UKI as the removable-media
// loader: the El Torito EFI boot image of iso-efi.
func (w *writer) efiImage(p string) error {
	img, size, err := w.theUKI()
	if err != nil {
		return err
	}
	d, err := diskfs.Create(p, espSize(size, 0), diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("create EFI boot image: %w", err)
	}
	defer closeDisk(d)
	if err := fillFAT(d, 0, "KEEL-EFI", []fatFile{{EFIBootPath, img}}); err != nil {
		return err
	}
	if err := closeDisk(d); err != nil {
		return err
	}
	return setFATSerial(p, 0, w.id("efi image serial"))
}

// isoFile is a file to put into an ISO: from a path on disk.
type isoFile struct {
	path string // in the ISO
	src  string // on disk
	data []byte // when src is ""
}

// writeISO writes an ISO 9660 image at p with files and the El Torito
// catalog et, then fixes its time stamps (go-diskfs stamps the time of
// the build) and trims it to its volume size.
func (w *writer) writeISO(p string, files []isoFile, et *iso9660.ElTorito) error {
	var total int64
	for _, f := range files {
		if f.src != "" {
			st, err := os.Stat(f.src)
			if err != nil {
				return err
			}
			total += roundUp(st.Size(), 2048)
		} else {
			total += roundUp(int64(len(f.data)), 2048)
		}
	}
	size := roundUp(total+w.in.Extra+4*MiB, 2048)
	work, err := os.MkdirTemp(w.tmp, "iso-")
	if err != nil {
		return err
	}
	d, err := diskfs.Create(p, size, 2048)
	if err != nil {
		return fmt.Errorf("create ISO: %w", err)
	}
	defer closeDisk(d)
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: "KEEL", WorkDir: work})
	if err != nil {
		return fmt.Errorf("make ISO 9660: %w", err)
	}
	for _, f := range files {
		if err := fs.Mkdir(path.Dir(f.path)); err != nil {
			return fmt.Errorf("ISO mkdir %s: %w", path.Dir(f.path), err)
		}
		fh, err := fs.OpenFile(f.path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("ISO create %s: %w", f.path, err)
		}
		if f.src != "" {
			err = copyFrom(fh, f.src)
		} else {
			_, err = fh.Write(f.data)
		}
		if err != nil {
			return fmt.Errorf("ISO write %s: %w", f.path, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("ISO write %s: %w", f.path, err)
		}
	}
	iso, ok := fs.(*iso9660.FileSystem)
	if !ok {
		return fmt.Errorf("go-diskfs made a %T, not an ISO 9660 file system", fs)
	}
	if err := iso.Finalize(iso9660.FinalizeOptions{ElTorito: et, VolumeIdentifier: "KEEL"}); err != nil {
		return fmt.Errorf("finalize ISO: %w", err)
	}
	if err := closeDisk(d); err != nil {
		return err
	}
	return fixISO(p, mtime(w.in.Mtime))
}

// writeISOEFI writes an ISO whose El Torito catalog has one EFI entry,
// a FAT image holding the UKI.
func (w *writer) writeISOEFI(p string) error {
	efi := p + ".efiboot"
	if err := w.efiImage(efi); err != nil {
		return err
	}
	defer os.Remove(efi)
	err := w.writeISO(p, []isoFile{{path: "/EFIBOOT.IMG", src: efi}}, &iso9660.ElTorito{
		BootCatalog: "/BOOT.CAT",
		Entries: []*iso9660.ElToritoEntry{{
			Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: "/EFIBOOT.IMG",
		}},
	})
	if err != nil {
		return err
	}
	return efiPartitionMBR(p, w.id("mbr signature"))
}

// efiPartitionMBR makes the ISO at p bootable by UEFI from a USB stick
// too: an MBR in the ISO's system area (which CD-ROM boots ignore) with
// one partition of type 0xEF, the EFI system partition, over the El Torito
// EFI image. The image is padded to whole MiB, as disks are.
func efiPartitionMBR(p string, id []byte) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	lba, blocks, err := elToritoImage(f)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := f.Truncate(roundUp(st.Size(), MiB)); err != nil {
		return err
	}
	// The El Torito entry counts 512-byte sectors, and may say 0 for an
	// image over 32 MiB: then the FAT's own boot sector gives its size.
	sectors := int64(blocks)
	if sectors <= 1 {
		bs := make([]byte, 512)
		if _, err := f.ReadAt(bs, int64(lba)*2048); err != nil {
			return err
		}
		sectors = int64(binary.LittleEndian.Uint32(bs[0x20:]))
		if sectors == 0 {
			sectors = int64(binary.LittleEndian.Uint16(bs[0x13:]))
		}
	}
	mbr := make([]byte, 512)
	copy(mbr[440:444], id)
	e := mbr[446:462]
	e[0] = 0x00                         // not active: BIOS does not boot it
	e[1], e[2], e[3] = 0xfe, 0xff, 0xff // CHS unused: LBA only
	e[4] = 0xef
	e[5], e[6], e[7] = 0xfe, 0xff, 0xff
	binary.LittleEndian.PutUint32(e[8:], lba*4)
	binary.LittleEndian.PutUint32(e[12:], uint32(sectors))
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	return f.Close()
}

// elToritoImage returns where the boot catalog's initial entry's image
// is (in 2048-byte blocks) and its sector count.
func elToritoImage(f *os.File) (lba uint32, sectors uint16, err error) {
	brvd := make([]byte, 2048)
	if _, err := f.ReadAt(brvd, 17*2048); err != nil {
		return 0, 0, err
	}
	if brvd[0] != 0 || string(brvd[1:6]) != "CD001" || string(brvd[7:30]) != "EL TORITO SPECIFICATION" {
		return 0, 0, errors.New("ISO has no El Torito boot record at sector 17")
	}
	cat := make([]byte, 64)
	if _, err := f.ReadAt(cat, int64(binary.LittleEndian.Uint32(brvd[0x47:]))*2048); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(cat[32+8:]), binary.LittleEndian.Uint16(cat[32+6:]), nil
}

// fixISO sets every time stamp of the ISO at p to t: the volume
// descriptors' dates and each directory record's, walked from the root.
func fixISO(p string, t time.Time) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	const sector = 2048
	le := binary.LittleEndian
	long := []byte(t.Format("20060102150405") + "00\x00")
	short := []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
	var root []byte
	var volumeBlocks int64
	for s := int64(16); (s+1)*sector <= int64(len(b)); s++ {
		vd := b[s*sector : (s+1)*sector]
		if string(vd[1:6]) != "CD001" {
			return fmt.Errorf("ISO: no volume descriptor at sector %d", s)
		}
		if vd[0] == 255 {
			break
		}
		if vd[0] == 1 || vd[0] == 2 {
			for _, off := range []int{813, 830, 847, 864} {
				copy(vd[off:off+17], long)
			}
			if vd[0] == 1 {
				root = vd[156 : 156+34]
				volumeBlocks = int64(le.Uint32(vd[80:]))
			}
		}
	}
	if root == nil {
		return errors.New("ISO: no primary volume descriptor")
	}
	seen := map[uint32]bool{}
	var walk func(rec []byte) error
	walk = func(rec []byte) error {
		copy(rec[18:25], short)
		if rec[25]&2 == 0 {
			return nil
		}
		lba, n := le.Uint32(rec[2:]), int64(le.Uint32(rec[10:]))
		if seen[lba] {
			return nil
		}
		seen[lba] = true
		start := int64(lba) * sector
		if start+n > int64(len(b)) {
			return fmt.Errorf("ISO: directory at block %d is outside the image", lba)
		}
		dir := b[start : start+n]
		for i := 0; i < len(dir); {
			l := int(dir[i])
			if l == 0 {
				i = (i/sector + 1) * sector
				continue
			}
			if i+l > len(dir) || l < 34 {
				return fmt.Errorf("ISO: bad directory record at block %d", lba)
			}
			r := dir[i : i+l]
			nameLen := int(r[32])
			self := nameLen == 1 && (r[33] == 0 || r[33] == 1)
			if self {
				copy(r[18:25], short)
			} else if err := walk(r); err != nil {
				return err
			}
			i += l
		}
		return nil
	}
	if err := walk(root); err != nil {
		return err
	}
	if volumeBlocks > 0 && volumeBlocks*sector < int64(len(b)) {
		b = b[:volumeBlocks*sector]
	}
	if bytes.Equal(b, nil) {
		return errors.New("ISO: empty")
	}
	return os.WriteFile(p, b, 0o644)
}

// closeDisk closes d once: go-diskfs's Close fails on a second call.
func closeDisk(d *disk.Disk) error {
	if d.Backend == nil {
		return nil
	}
	err := d.Close()
	d.Backend = nil
	return err
}

// copyFrom copies the file at src into w in large pieces: go-diskfs's
// writers do work per call.
func copyFrom(w io.Writer, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{f}, make([]byte, 4<<20))
	return err
}
