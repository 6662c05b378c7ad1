// Package disk writes the bootable formats made from a build's kernel,
// initrd and command line: a unified kernel image, the ELF kernel, and
// disk images for UEFI and BIOS firmware and for clouds. Partition
// tables, FAT and ISO 9660 come from go-diskfs, in-process: no root, no
// loop devices. Boot loaders come from keel/boot (pkg/bootimage).
//
// Every format is reproducible: time stamps are the build's mtime, and
// volume serials and GPT GUIDs are derived from the content.
package disk

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/bootimage"
)

// Format is one bootable output.
type Format string

const (
	UKI       Format = "uki"        // NAME.efi: systemd-stub + kernel + initrd + cmdline
	Vmlinux   Format = "vmlinux"    // NAME-vmlinux: the ELF kernel
	RawEFI    Format = "raw-efi"    // NAME-efi.img: GPT, EFI system partition with the UKI
	ISOEFI    Format = "iso-efi"    // NAME-efi.iso: El Torito EFI image holding the UKI
	QCOW2EFI  Format = "qcow2-efi"  // NAME-efi.qcow2: raw-efi as qcow2
	RawBIOS   Format = "raw-bios"   // NAME-bios.img: isolinux disk (isohybrid)
	ISOBIOS   Format = "iso-bios"   // NAME-bios.iso: isolinux CD
	QCOW2BIOS Format = "qcow2-bios" // NAME-bios.qcow2: raw-bios as qcow2
	VHD       Format = "vhd"        // NAME.vhd: raw-efi as a fixed VHD, 1 MiB aligned (Azure)
	VMDK      Format = "vmdk"       // NAME.vmdk: raw-efi as a monolithic sparse VMDK
	GCP       Format = "gcp"        // NAME.img.tar.gz: disk.raw (raw-efi) in a GNU tar, gzip'd (GCE import)
	AWS       Format = "aws"        // NAME-aws.raw: raw-efi, for an AWS import in UEFI boot mode
)

// Formats lists every format, in the order they are written.
var Formats = []Format{UKI, Vmlinux, RawEFI, ISOEFI, QCOW2EFI, RawBIOS, ISOBIOS, QCOW2BIOS, VHD, VMDK, GCP, AWS}

// ParseFormat checks a format name; ok is false for a name this package
// does not write.
func ParseFormat(s string) (Format, bool) {
	for _, f := range Formats {
		if string(f) == s {
			return f, true
		}
	}
	return "", false
}

// File is where format f of the outputs named name goes in dir.
func File(dir, name string, f Format) string {
	suffix := map[Format]string{
		UKI: ".efi", Vmlinux: "-vmlinux", RawEFI: "-efi.img", ISOEFI: "-efi.iso", QCOW2EFI: "-efi.qcow2",
		RawBIOS: "-bios.img", ISOBIOS: "-bios.iso", QCOW2BIOS: "-bios.qcow2", VHD: ".vhd", VMDK: ".vmdk",
		GCP: ".img.tar.gz", AWS: "-aws.raw",
	}[f]
	return filepath.Join(dir, name+suffix)
}

// NeedsLoaders reports whether any of formats needs keel/boot.
func NeedsLoaders(formats []Format) bool {
	for _, f := range formats {
		if f != Vmlinux {
			return true
		}
	}
	return false
}

// Inputs are what the formats are made from: the files keel build writes.
type Inputs struct {
	Kernel, Initrd, Cmdline string // paths
	Loaders                 bootimage.Loaders
	// Mtime stamps every file system time, in seconds since 1970.
	Mtime int64
	// Extra is room to grow, in bytes, added to each disk's file system.
	Extra int64
	// Name goes into the UKI's os-release (PRETTY_NAME).
	Name string
}

// MiB is a mebibyte, the unit disks are aligned to.
const MiB = 1 << 20

// Write writes each format into dir, as NAME plus the format's suffix
// (File), each atomically. It returns the files written.
func Write(dir, name string, formats []Format, in Inputs) ([]string, error) {
	if NeedsLoaders(formats) && in.Loaders == nil {
		return nil, fmt.Errorf("formats %v need the boot loaders of keel/boot", formats)
	}
	restore := pinClock(in.Mtime)
	defer restore()
	tmp, err := os.MkdirTemp(dir, ".keel-disk-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	w := &writer{in: in, tmp: tmp, name: name, made: map[Format]string{}}
	var files []string
	for _, f := range formats {
		p, err := w.make(f)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", File(dir, name, f), err)
		}
		files = append(files, p)
	}
	// Everything is made before anything is moved into place.
	var out []string
	seen := map[Format]bool{}
	for i, f := range formats {
		if seen[f] {
			continue
		}
		seen[f] = true
		dst := File(dir, name, f)
		if err := os.Chmod(files[i], 0o644); err != nil {
			return nil, err
		}
		// A format another one is made from (raw-efi under vhd) is copied
		// by a hard link, so it stays for the other's use.
		os.Remove(dst + ".tmp") // left by a killed build, if any
		if err := os.Link(files[i], dst+".tmp"); err != nil {
			return nil, fmt.Errorf("write %s: %w", dst, err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			os.Remove(dst + ".tmp")
			return nil, fmt.Errorf("write %s: %w", dst, err)
		}
		out = append(out, dst)
	}
	return out, nil
}

// writer makes each format once, in tmp, reusing what one is made from.
type writer struct {
	in      Inputs
	tmp     string
	name    string // of the outputs
	made    map[Format]string
	ukiSize int64  // of tmp/uki.efi, once written
	digest  []byte // of the inputs, for id
}

func (w *writer) make(f Format) (string, error) {
	if p, ok := w.made[f]; ok {
		return p, nil
	}
	p := filepath.Join(w.tmp, string(f))
	if f == VMDK {
		// A sparse VMDK's descriptor names its own file: make it under
		// the name it will have.
		p = filepath.Join(w.tmp, filepath.Base(File("", w.name, f)))
	}
	var err error
	switch f {
	case UKI:
		err = w.writeUKI(p)
	case Vmlinux:
		err = w.writeVmlinux(p)
	case RawEFI, AWS:
		if f == AWS {
			// A copy, not a link: the two outputs must not change together.
			var raw string
			if raw, err = w.make(RawEFI); err == nil {
				err = copyFile(raw, p)
			}
			break
		}
		err = w.writeRawEFI(p)
	case ISOEFI:
		err = w.writeISOEFI(p)
	case ISOBIOS:
		err = w.writeISOBIOS(p, false)
	case RawBIOS:
		err = w.writeISOBIOS(p, true)
	case QCOW2EFI, QCOW2BIOS, VMDK, VHD, GCP:
		from := RawEFI
		if f == QCOW2BIOS {
			from = RawBIOS
		}
		var raw string
		if raw, err = w.make(from); err != nil {
			return "", err
		}
		switch f {
		case VHD:
			err = writeVHD(raw, p, w.in.Mtime)
		case GCP:
			err = writeGCP(raw, p, w.in.Mtime)
		case VMDK:
			err = qemuImg(raw, p, "vmdk", w.id("vmdk"))
		default:
			err = qemuImg(raw, p, "qcow2", nil)
		}
	default:
		return "", fmt.Errorf("unknown format %q", f)
	}
	if err != nil {
		return "", err
	}
	w.made[f] = p
	return p, nil
}

// cmdline is the kernel command line, one line, as keel build wrote it.
func (w *writer) cmdline() (string, error) {
	b, err := os.ReadFile(w.in.Cmdline)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// id derives 16 bytes from the kernel, initrd and cmdline and a purpose,
// for GUIDs and serials that change only with the content.
func (w *writer) id(purpose string) []byte {
	if w.digest == nil {
		h := sha256.New()
		for _, p := range []string{w.in.Kernel, w.in.Initrd, w.in.Cmdline} {
			f, err := os.Open(p)
			if err != nil {
				// The build wrote these files; make fails on them first.
				fmt.Fprintf(h, "missing %s\x00", filepath.Base(p))
				continue
			}
			n, _ := io.Copy(h, f)
			f.Close()
			fmt.Fprintf(h, "\x00%d\x00", n)
		}
		w.digest = h.Sum(nil)
	}
	h := sha256.Sum256(append([]byte("keel disk id\x00"+purpose+"\x00"), w.digest...))
	return h[:16]
}

// guid formats 16 bytes as an RFC 4122 version 4 style UUID string.
func guid(b []byte) string {
	u := append([]byte(nil), b[:16]...)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func mtime(s int64) time.Time { return time.Unix(s, 0).UTC() }

func roundUp(n, align int64) int64 { return (n + align - 1) / align * align }

// fatEpoch is 1980-01-01, the earliest time a FAT directory entry holds.
const fatEpoch = 315532800

// clockMu serialises pinClock: the environment is the process's.
var clockMu sync.Mutex

// pinClock makes go-diskfs stamp FAT directory entries with the build's
// time instead of the time of day: it reads SOURCE_DATE_EPOCH, the
// reproducible-builds convention keel's own mtime follows, from the
// environment and has no option for it. The time is kept within what FAT
// can hold. The returned function puts the environment back.
func pinClock(mtime int64) func() {
	clockMu.Lock()
	old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
	os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(max(mtime, fatEpoch), 10))
	return func() {
		if had {
			os.Setenv("SOURCE_DATE_EPOCH", old)
		} else {
			os.Unsetenv("SOURCE_DATE_EPOCH")
		}
		clockMu.Unlock()
	}
}

func copyFile(src, dst string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := copyFrom(out, src); err != nil {
		return err
	}
	return out.Close()
}
