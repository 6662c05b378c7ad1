package qemu_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/keel-os/keel/pkg/disk"
	"github.com/keel-os/keel/pkg/qemu"
)

// formatsYAML is a small system: one service under containerd, which the
// tests wait for before pressing the power button.
const formatsYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0"
init:
  - {{.Init}}
services:
  - name: ticker
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`

// allFormats is one build of formatsYAML in every disk format, shared by
// the boot tests: building it once keeps make test short.
var allFormats struct {
	once sync.Once
	dir  string
	took time.Duration
	fail bool
}

// builtFormats returns the output directory of allFormats, building it on
// first use.
func builtFormats(t *testing.T) string {
	t.Helper()
	allFormats.once.Do(func() {
		allFormats.fail = true
		var names []string
		for _, f := range disk.Formats {
			names = append(names, string(f))
		}
		allFormats.dir, allFormats.took = buildFormats(t, runDir, names...)
		allFormats.fail = false
	})
	if allFormats.fail {
		t.Fatal("the build of every format failed (see the first test that ran it)")
	}
	return allFormats.dir
}

// buildFormats builds formatsYAML in the given formats under parent, with
// every image, keel/boot included, pulled from the test registry into an
// empty cache. It returns the output directory and the build's wall time.
func buildFormats(t *testing.T, parent string, formats ...string) (string, time.Duration) {
	t.Helper()
	data := map[string]string{"Registry": registryHost}
	for k, ref := range baseImages() {
		data[k] = registryHost + "/" + ref
	}
	var buf bytes.Buffer
	if err := template.Must(template.New("f").Parse(formatsYAML)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(parent, "formats-")
	if err != nil {
		t.Fatal(err)
	}
	yml := filepath.Join(dir, "sys.yml")
	if err := os.WriteFile(yml, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	args := []string{"build", "-dir", out, "-boot-image", data["Boot"]}
	for _, f := range formats {
		args = append(args, "-format", f)
	}
	cmd := exec.Command(keelBin, append(args, yml)...)
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+filepath.Join(dir, "cache"))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Logf("keel build -format %s (%s):\n%s", strings.Join(formats, ","), took.Round(100*time.Millisecond), b)
	if err != nil {
		t.Fatalf("keel build: %v", err)
	}
	return out, took
}

// bootFile boots a disk image the way keel run picks it, waits for the
// service, presses the power button and expects a clean power-off.
func bootFile(t *testing.T, file string, wantHow string) {
	t.Helper()
	bootFileAs(t, file, wantHow, nil)
}

// bootFileAs is bootFile with the media changed by as after keel run's
// choice.
func bootFileAs(t *testing.T, file string, wantHow string, as func(*qemu.Machine)) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	var how string
	start := time.Now()
	vm := boot(t, "", func(m *qemu.Machine) {
		// One vCPU: once, a SeaBIOS boot on two under TCG hung in the
		// guest kernel with CPU 0's timer wake-ups lost (an RCU stall,
		// "timer wakeup didn't happen"), before keel's init ran.
		m.CPUs = 1
		m.Kernel, m.Initrd, m.Cmdline = "", "", ""
		if how, err = m.Target(file, false); err != nil {
			t.Fatal(err)
		}
		if as != nil {
			as(m)
		}
		if m.UEFI {
			if err := m.PrivateVars(t.TempDir()); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !strings.Contains(how, wantHow) {
		t.Errorf("keel run would boot %s as %q, want %q", filepath.Base(file), how, wantHow)
	}
	const wait = 6 * time.Minute
	i := vm.Expect(0, `keel: service ticker running`, wait)
	running := time.Since(start)
	if _, err := qemu.QMP(vm.QMPPath, "system_powerdown", nil); err != nil {
		t.Fatal(err)
	}
	i = vm.Expect(i, `keel: shutdown power-off`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after the power button: %v", err)
	}
	t.Logf("%s (%.1f MB, %s): QEMU start -> service running %s", filepath.Base(file), float64(st.Size())/1e6, how, running.Round(100*time.Millisecond))
}

// The build of every format: its time and each file's size.
func TestBuildAllFormats(t *testing.T) {
	requireBoot(t)
	out := builtFormats(t)
	t.Logf("keel build of every format: %s", allFormats.took.Round(100*time.Millisecond))
	for _, f := range disk.Formats {
		st, err := os.Stat(disk.File(out, "sys", f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		t.Logf("%-10s %8.1f MB  %s", f, float64(st.Size())/1e6, filepath.Base(disk.File(out, "sys", f)))
	}
	// Only what was asked for is written: kernel+initrd were made for the
	// disks, in a temporary directory.
	if _, err := os.Stat(filepath.Join(out, "sys-kernel")); err == nil {
		t.Error("sys-kernel written, but kernel+initrd was not asked for")
	}
}

// UEFI from a GPT disk: OVMF finds \EFI\BOOT\BOOTX64.EFI, the UKI.
func TestBootRawEFI(t *testing.T) {
	requireBoot(t)
	bootFile(t, disk.File(builtFormats(t), "sys", disk.RawEFI), "raw GPT disk as the boot disk under UEFI")
}

// UEFI from a CD: the El Torito EFI entry's FAT image holds the UKI.
func TestBootISOEFI(t *testing.T) {
	requireBoot(t)
	bootFile(t, disk.File(builtFormats(t), "sys", disk.ISOEFI), "ISO 9660 as a CD-ROM under UEFI")
}

// The same ISO written to a USB stick: OVMF finds the EFI system
// partition its MBR names, the El Torito image.
func TestBootISOEFIAsDisk(t *testing.T) {
	requireBoot(t)
	bootFileAs(t, disk.File(builtFormats(t), "sys", disk.ISOEFI), "ISO 9660 as a CD-ROM under UEFI", func(m *qemu.Machine) {
		m.BootDisk, m.BootFormat, m.CDROM = m.CDROM, "raw", ""
	})
}

// The UKI on its own: OVMF starts it as -kernel, and systemd-stub boots
// the kernel, initrd and command line of its sections.
func TestBootUKI(t *testing.T) {
	requireBoot(t)
	bootFile(t, disk.File(builtFormats(t), "sys", disk.UKI), "unified kernel image started by UEFI")
}

// vmlinux through its PVH entry, the way Firecracker and Cloud Hypervisor
// boot it, with the initrd of the same build: kernel+initrd asked for with
// a disk format lands beside it.
func TestBootVmlinux(t *testing.T) {
	requireBoot(t)
	out, _ := buildFormats(t, t.TempDir(), "kernel+initrd", "vmlinux")
	for _, f := range []string{"sys-kernel", "sys-initrd.img", "sys-cmdline", "sys-vmlinux"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	bootFile(t, disk.File(out, "sys", disk.Vmlinux), "ELF kernel through its PVH entry")
}

// BIOS from a CD: SeaBIOS starts isolinux.bin.
func TestBootISOBIOS(t *testing.T) {
	requireBoot(t)
	bootFile(t, disk.File(builtFormats(t), "sys", disk.ISOBIOS), "ISO 9660 as a CD-ROM under BIOS")
}

// BIOS from a disk: SeaBIOS runs the isohybrid MBR, which starts
// isolinux.bin.
func TestBootRawBIOS(t *testing.T) {
	requireBoot(t)
	bootFile(t, disk.File(builtFormats(t), "sys", disk.RawBIOS), "isohybrid ISO 9660 as the boot disk under BIOS")
}

// The converted disks: QEMU reads each as the very disk it was made from
// (qemu-img compare), and the VHD (QEMU's vpc driver) and the BIOS qcow2
// boot; vmdk and qcow2-efi hold raw-efi's bytes, which TestBootRawEFI boots.
func TestBootConvertedDisks(t *testing.T) {
	requireBoot(t)
	out := builtFormats(t)
	for _, c := range []struct {
		f, from disk.Format
		fmt     string
	}{
		{disk.QCOW2EFI, disk.RawEFI, "qcow2"},
		{disk.QCOW2BIOS, disk.RawBIOS, "qcow2"},
		{disk.VHD, disk.RawEFI, "vpc"},
		{disk.VMDK, disk.RawEFI, "vmdk"},
		{disk.AWS, disk.RawEFI, "raw"},
	} {
		opts := "driver=" + c.fmt
		if c.fmt == "vpc" {
			opts += ",force_size_calc=current_size"
		}
		cmp := exec.Command("qemu-img", "compare", "--image-opts",
			opts+",file.filename="+disk.File(out, "sys", c.f), "driver=raw,file.filename="+disk.File(out, "sys", c.from))
		if b, err := cmp.CombinedOutput(); err != nil {
			t.Errorf("qemu-img compare %s %s: %v\n%s", c.f, c.from, err, b)
		}
	}
	t.Run("vhd", func(t *testing.T) {
		bootFile(t, disk.File(out, "sys", disk.VHD), "fixed VHD as the boot disk under UEFI")
	})
	t.Run("qcow2-bios", func(t *testing.T) {
		bootFile(t, disk.File(out, "sys", disk.QCOW2BIOS), "qcow2 disk as the boot disk under BIOS")
	})
	// Identical to raw-efi by content, and booted all the same: the
	// firmware and QEMU's format driver are what differ.
	t.Run("qcow2-efi", func(t *testing.T) {
		bootFile(t, disk.File(out, "sys", disk.QCOW2EFI), "qcow2 disk as the boot disk under UEFI")
	})
	t.Run("vmdk", func(t *testing.T) {
		bootFile(t, disk.File(out, "sys", disk.VMDK), "vmdk disk as the boot disk under UEFI")
	})
}
