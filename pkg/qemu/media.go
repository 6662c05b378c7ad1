package qemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// OVMF is Debian's UEFI firmware for QEMU (package ovmf): the code, read
// only, and the template of the variable store each VM gets a copy of.
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Media is what the firmware boots when there is no -kernel.
type Media struct {
	// UEFI boots OVMF instead of SeaBIOS; VarsFile is this VM's private
	// copy of the variable store (see PrivateVars).
	UEFI     bool
	VarsFile string
	// CDROM is an ISO attached as a CD-ROM, the first boot device.
	CDROM string
	// BootDisk is a disk image attached as the first boot device, in
	// BootFormat (raw, qcow2, vpc, vmdk; "" is raw).
	BootDisk   string
	BootFormat string
}

func (m Media) args() ([]string, error) {
	var a []string
	if m.UEFI {
		if _, err := os.Stat(OVMFCode); err != nil {
			return nil, fmt.Errorf("UEFI firmware: %w (apt-get install ovmf)", err)
		}
		if m.VarsFile == "" {
			return nil, errors.New("UEFI: no private copy of the variable store (PrivateVars)")
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+m.VarsFile)
	}
	if m.CDROM != "" {
		if _, err := os.Stat(m.CDROM); err != nil {
			return nil, fmt.Errorf("cd-rom: %w", err)
		}
		a = append(a, "-drive", "file="+m.CDROM+",format=raw,media=cdrom,readonly=on,if=none,id=cd0",
			"-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=1")
	}
	if m.BootDisk != "" {
		if _, err := os.Stat(m.BootDisk); err != nil {
			return nil, fmt.Errorf("boot disk: %w", err)
		}
		f := m.BootFormat
		if f == "" {
			f = "raw"
		}
		opts := "format=" + f
		if f == "vpc" {
			// A VHD's size is its footer's current size, as Azure and
			// Hyper-V read it; QEMU would go by the CHS geometry for a
			// creator it does not know, and lose the disk's tail.
			opts = "driver=vpc,force_size_calc=current_size"
		}
		// snapshot=on: a boot never changes the image keel build wrote.
		a = append(a, "-drive", "file="+m.BootDisk+","+opts+",if=none,id=boot0,snapshot=on",
			"-device", "virtio-blk-pci,drive=boot0,bootindex=1")
	}
	return a, nil
}

// PrivateVars copies OVMF's variable store template into dir for this VM:
// the firmware writes to it, and the shared template must stay as it is.
func (m *Media) PrivateVars(dir string) error {
	src, err := os.Open(OVMFVars)
	if err != nil {
		return fmt.Errorf("UEFI variable store: %w (apt-get install ovmf)", err)
	}
	defer src.Close()
	p := filepath.Join(dir, "OVMF_VARS.fd")
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	m.VarsFile = p
	return dst.Close()
}

// Classify says how to boot the image file p, from its content: an ISO
// is a CD-ROM, UEFI when its El Torito catalog has an EFI entry, unless it
// is isohybrid (a bootable MBR too), which boots as a disk under BIOS; a raw
// disk with a GPT boots under UEFI, one with only an MBR under BIOS; a
// fixed VHD is a raw disk with a footer; qcow2 and VMDK are disks whose
// firmware the file name says (-bios) or else UEFI, as keel makes them
// from raw-efi. why says it in words.
func Classify(p string) (m Media, why string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return m, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return m, "", err
	}
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	base := filepath.Base(p)
	firmware := func(uefi bool) string {
		if uefi {
			return "UEFI (OVMF)"
		}
		return "BIOS (SeaBIOS)"
	}
	switch {
	case len(head) > 0x8006 && string(head[0x8001:0x8006]) == "CD001" && hasMBRBoot(head):
		// An isohybrid ISO (raw-bios) is made to boot from a disk: boot it
		// so, through its MBR.
		m.BootDisk, m.BootFormat = p, "raw"
		return m, "isohybrid ISO 9660 as the boot disk under BIOS (SeaBIOS)", nil
	case len(head) > 0x8006 && string(head[0x8001:0x8006]) == "CD001":
		m.CDROM = p
		m.UEFI = isoHasEFI(f)
		return m, fmt.Sprintf("ISO 9660 as a CD-ROM under %s", firmware(m.UEFI)), nil
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		m.BootDisk, m.BootFormat = p, "qcow2"
	case bytes.HasPrefix(head, []byte("KDMV")):
		m.BootDisk, m.BootFormat = p, "vmdk"
	case st.Size() >= 512 && hasVHDFooter(f, st.Size()):
		m.BootDisk, m.BootFormat = p, "vpc"
		m.UEFI = hasGPT(head)
		return m, fmt.Sprintf("fixed VHD as the boot disk under %s", firmware(m.UEFI)), nil
	case hasGPT(head):
		m.BootDisk, m.BootFormat, m.UEFI = p, "raw", true
		return m, "raw GPT disk as the boot disk under UEFI (OVMF)", nil
	case hasMBRBoot(head):
		m.BootDisk, m.BootFormat = p, "raw"
		return m, "raw MBR disk as the boot disk under BIOS (SeaBIOS)", nil
	default:
		return m, "", fmt.Errorf("%s is neither kernel+initrd outputs nor a disk image keel run knows (ISO, raw, qcow2, VHD, VMDK)", p)
	}
	m.UEFI = !strings.Contains(base, "-bios")
	return m, fmt.Sprintf("%s disk as the boot disk under %s (from its name)", m.BootFormat, firmware(m.UEFI)), nil
}

func hasGPT(head []byte) bool { return len(head) >= 520 && string(head[512:520]) == "EFI PART" }

func hasMBRBoot(head []byte) bool {
	if len(head) < 512 || head[510] != 0x55 || head[511] != 0xaa {
		return false
	}
	for i := 0; i < 4; i++ {
		if head[446+16*i] == 0x80 {
			return true
		}
	}
	return false
}

func hasVHDFooter(f *os.File, size int64) bool {
	b := make([]byte, 8)
	_, err := f.ReadAt(b, size-512)
	return err == nil && string(b) == "conectix"
}

// isoHasEFI reads the El Torito boot catalog for an EFI (0xef) platform
// entry: in the validation entry or a section header.
func isoHasEFI(f *os.File) bool {
	brvd := make([]byte, 2048)
	if _, err := f.ReadAt(brvd, 17*2048); err != nil || brvd[0] != 0 || string(brvd[7:30]) != "EL TORITO SPECIFICATION" {
		return false
	}
	cat := make([]byte, 2048)
	if _, err := f.ReadAt(cat, int64(binary.LittleEndian.Uint32(brvd[0x47:]))*2048); err != nil {
		return false
	}
	if cat[0] == 1 && cat[1] == 0xef {
		return true
	}
	for i := 64; i+32 <= len(cat); i += 32 {
		if (cat[i] == 0x90 || cat[i] == 0x91) && cat[i+1] == 0xef {
			return true
		}
	}
	return false
}

// Target is what `keel run NAME` boots: NAME itself when it is a file
// (a disk image, a unified kernel image, or NAME-vmlinux with the
// NAME-initrd.img and NAME-cmdline beside it), else the kernel+initrd
// outputs NAME-kernel, NAME-initrd.img and NAME-cmdline. uefi asks for
// OVMF whatever the image. The returned words say which file boots and
// how.
func (m *Machine) Target(name string, uefi bool) (why string, err error) {
	firmware := map[bool]string{true: "UEFI (OVMF)", false: "BIOS (SeaBIOS)"}
	st, statErr := os.Stat(name)
	if statErr != nil || !st.Mode().IsRegular() {
		m.Kernel, m.Initrd, m.UEFI = name+"-kernel", name+"-initrd.img", uefi
		if err := m.readCmdline(name + "-cmdline"); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s and %s, direct kernel boot (-kernel) under %s", m.Kernel, m.Initrd, firmware[uefi]), nil
	}
	head := make([]byte, 4096)
	if f, err := os.Open(name); err == nil {
		n, _ := io.ReadFull(f, head)
		head = head[:n]
		f.Close()
	}
	switch {
	case isPE(head):
		// OVMF loads a PE given as -kernel and starts it: systemd-stub
		// then boots the kernel, initrd and command line of its sections.
		m.Kernel, m.UEFI = name, true
		return "unified kernel image started by UEFI (OVMF) as -kernel", nil
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		prefix, ok := strings.CutSuffix(name, "-vmlinux")
		if !ok {
			return "", fmt.Errorf("%s is an ELF kernel; keel run finds its initrd and cmdline beside a NAME-vmlinux", name)
		}
		m.Kernel, m.Initrd, m.UEFI = name, prefix+"-initrd.img", uefi
		if err := m.readCmdline(prefix + "-cmdline"); err != nil {
			return "", err
		}
		return fmt.Sprintf("ELF kernel through its PVH entry (-kernel), as Firecracker and Cloud Hypervisor boot it, with %s, under %s", m.Initrd, firmware[uefi]), nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "", fmt.Errorf("%s is gzip'd (a GCE import tarball?): boot the disk inside it (NAME-efi.img is the same disk)", name)
	}
	media, why, err := Classify(name)
	if err != nil {
		return "", err
	}
	m.Media = media
	if uefi && !m.UEFI {
		m.UEFI = true
		why += ", UEFI asked for (-uefi)"
	}
	return why, nil
}

// readCmdline sets the command line from a NAME-cmdline file.
func (m *Machine) readCmdline(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w (build it with `keel build`)", err)
	}
	m.Cmdline = strings.TrimSpace(string(b))
	return nil
}

// isPE reports a PE image: "MZ", and "PE\0\0" where the DOS header points.
func isPE(head []byte) bool {
	if len(head) < 0x40 || string(head[:2]) != "MZ" {
		return false
	}
	off := int(binary.LittleEndian.Uint32(head[0x3c:]))
	return off+4 <= len(head) && string(head[off:off+4]) == "PE\x00\x00"
}
