package qemu

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeImage(t *testing.T, name string, size int, edit func(b []byte)) string {
	t.Helper()
	b := make([]byte, size)
	edit(b)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClassify(t *testing.T) {
	gpt := func(b []byte) { copy(b[512:], "EFI PART") }
	mbr := func(b []byte) { b[446] = 0x80; b[510], b[511] = 0x55, 0xaa }
	iso := func(platform byte) func(b []byte) {
		return func(b []byte) {
			copy(b[0x8001:], "CD001")
			brvd := b[17*2048:]
			copy(brvd[1:], "CD001")
			copy(brvd[7:], "EL TORITO SPECIFICATION")
			binary.LittleEndian.PutUint32(brvd[0x47:], 20)
			b[20*2048], b[20*2048+1] = 1, platform
		}
	}
	for _, c := range []struct {
		name string
		edit func([]byte)
		uefi bool
		disk string // BootFormat, "" for a CD-ROM
		why  string
	}{
		{"x-efi.img", gpt, true, "raw", "raw GPT disk"},
		{"x-bios.img", mbr, false, "raw", "raw MBR disk"},
		{"x.iso", iso(0xef), true, "", "ISO 9660 as a CD-ROM under UEFI"},
		{"x.iso", iso(0), false, "", "ISO 9660 as a CD-ROM under BIOS"},
		{"x-bios.img", func(b []byte) { iso(0)(b); mbr(b) }, false, "raw", "isohybrid ISO 9660 as the boot disk under BIOS"},
		{"x-bios.qcow2", func(b []byte) { copy(b, "QFI\xfb") }, false, "qcow2", "under BIOS (SeaBIOS) (from its name)"},
		{"x-efi.qcow2", func(b []byte) { copy(b, "QFI\xfb") }, true, "qcow2", "under UEFI"},
		{"x.vmdk", func(b []byte) { copy(b, "KDMV") }, true, "vmdk", "vmdk disk"},
		{"x.vhd", func(b []byte) { gpt(b); copy(b[len(b)-512:], "conectix") }, true, "vpc", "fixed VHD"},
	} {
		p := writeImage(t, c.name, 0x10000+2048*21, c.edit)
		m, why, err := Classify(p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if m.UEFI != c.uefi || m.BootFormat != c.disk || (c.disk == "") != (m.CDROM == p) || !strings.Contains(why, c.why) {
			t.Errorf("%s: %+v %q", c.name, m, why)
		}
	}
	p := writeImage(t, "junk", 4096, func([]byte) {})
	if _, _, err := Classify(p); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("junk: %v", err)
	}
}

func TestMediaArgs(t *testing.T) {
	var m Machine
	dir := t.TempDir()
	if _, err := m.Target(filepath.Join(dir, "demo"), false); err == nil || !strings.Contains(err.Error(), "keel build") {
		t.Errorf("no cmdline file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "demo-cmdline"), []byte("console=ttyS0\n"), 0o644)
	how, err := m.Target(filepath.Join(dir, "demo"), false)
	if err != nil || m.Kernel == "" || m.Cmdline != "console=ttyS0" || !strings.Contains(how, "direct kernel boot") {
		t.Errorf("prefix: %q %v", how, err)
	}
	// NAME-vmlinux boots with the initrd and cmdline beside it.
	vmlinux := filepath.Join(dir, "demo-vmlinux")
	os.WriteFile(vmlinux, []byte("\x7fELF\x02\x01\x01"), 0o644)
	m = Machine{}
	how, err = m.Target(vmlinux, false)
	if err != nil || m.Kernel != vmlinux || m.Initrd != filepath.Join(dir, "demo-initrd.img") || m.Cmdline != "console=ttyS0" || !strings.Contains(how, "PVH") {
		t.Errorf("vmlinux: %+v %q %v", m, how, err)
	}
	// A UKI is started by OVMF as -kernel, with nothing else.
	pe := writeImage(t, "demo.efi", 4096, func(b []byte) {
		copy(b, "MZ")
		binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
		copy(b[0x80:], "PE\x00\x00")
	})
	m = Machine{}
	how, err = m.Target(pe, false)
	if err != nil || m.Kernel != pe || m.Initrd != "" || m.Cmdline != "" || !m.UEFI || !strings.Contains(how, "unified kernel image") {
		t.Errorf("uki: %+v %q %v", m, how, err)
	}
	gz := writeImage(t, "demo.img.tar.gz", 4096, func(b []byte) { b[0], b[1] = 0x1f, 0x8b })
	if _, err := m.Target(gz, false); err == nil || !strings.Contains(err.Error(), "GCE") {
		t.Errorf("gcp: %v", err)
	}
	m = Machine{Accel: TCG, NoNetwork: true, Media: Media{UEFI: true}}
	if _, err := m.Args(); err == nil {
		t.Error("UEFI without a private variable store accepted")
	}
	p := writeImage(t, "d.vhd", 4096, func(b []byte) { copy(b[len(b)-512:], "conectix") })
	m = Machine{Accel: TCG, NoNetwork: true, Media: Media{BootDisk: p, BootFormat: "vpc"}}
	a, err := m.Args()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(a, " ")
	if strings.Contains(s, "-kernel") || !strings.Contains(s, "driver=vpc,force_size_calc=current_size") || !strings.Contains(s, "bootindex=1") {
		t.Errorf("args: %s", s)
	}
}
