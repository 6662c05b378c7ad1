package disk

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/gzip"

	"github.com/keel-os/keel/pkg/bootimage"
	"github.com/keel-os/keel/pkg/uki"
	"github.com/keel-os/keel/pkg/uki/ukitest"
)

// testInputs writes a stand-in kernel, initrd and cmdline, and stand-in
// loaders: the disk formats only carry them.
func testInputs(t *testing.T, initrd []byte) Inputs {
	t.Helper()
	dir := t.TempDir()
	in := Inputs{
		Kernel:  filepath.Join(dir, "kernel"),
		Initrd:  filepath.Join(dir, "initrd.img"),
		Cmdline: filepath.Join(dir, "cmdline"),
		Mtime:   1700000000,
		Name:    "test",
	}
	os.WriteFile(in.Kernel, bytes.Repeat([]byte("KERNEL"), 50000), 0o644)
	os.WriteFile(in.Initrd, initrd, 0o644)
	os.WriteFile(in.Cmdline, []byte("console=ttyS0 keel.test\n"), 0o644)
	isolinux := make([]byte, 4096)
	binary.LittleEndian.PutUint32(isolinux[0x40:], isohybridMagic)
	in.Loaders = bootimage.Loaders{
		bootimage.EFIStub:      ukitest.Stub(),
		bootimage.SystemdBoot:  []byte("sd-boot"),
		bootimage.Isolinux:     isolinux,
		bootimage.IsohybridMBR: bytes.Repeat([]byte{0xfa}, 432),
		bootimage.Ldlinux:      []byte("ldlinux"),
	}
	return in
}

func needQemuImg(t *testing.T, f Format) {
	if f == QCOW2EFI || f == QCOW2BIOS || f == VMDK {
		if _, err := exec.LookPath("qemu-img"); err != nil {
			t.Skip("qemu-img not installed (Debian's qemu-utils; make deps installs it)")
		}
	}
}

// Two builds of the same inputs give the same bytes, per format: no time
// of day, no random serial or GUID gets in.
func TestReproducible(t *testing.T) {
	for _, f := range Formats {
		if f == Vmlinux {
			continue // needs a real bzImage: pkg/vmlinux tests it
		}
		t.Run(string(f), func(t *testing.T) {
			needQemuImg(t, f)
			in := testInputs(t, bytes.Repeat([]byte("initrd"), 100000))
			var first []byte
			for i := 0; i < 2; i++ {
				dir := t.TempDir()
				files, err := Write(dir, "x", []Format{f}, in)
				if err != nil {
					t.Fatal(err)
				}
				if len(files) != 1 || files[0] != File(dir, "x", f) {
					t.Fatalf("files %v", files)
				}
				b, err := os.ReadFile(files[0])
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = b
				} else if !bytes.Equal(first, b) {
					t.Errorf("two builds differ (%d and %d bytes)", len(first), len(b))
				}
			}
			// A different initrd gives a different disk (GUIDs and serials
			// follow the content, they are not constants).
			if f != UKI {
				dir := t.TempDir()
				files, err := Write(dir, "x", []Format{f}, testInputs(t, bytes.Repeat([]byte("other!"), 100000)))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(files[0])
				if bytes.Equal(first, b) {
					t.Error("a different initrd gave the same bytes")
				}
			}
		})
	}
}

func TestRawEFILayout(t *testing.T) {
	in := testInputs(t, []byte("initrd"))
	in.Extra = 10 * MiB
	dir := t.TempDir()
	files, err := Write(dir, "x", []Format{RawEFI, UKI}, in)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(files[0])
	if st.Size()%MiB != 0 || st.Size() < minFAT32+10*MiB {
		t.Errorf("raw-efi is %d bytes: want whole MiB, with the -size room", st.Size())
	}
	d, err := diskfs.Open(files[0], diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	table := pt.(*gpt.Table)
	if len(table.Partitions) != 1 || table.Partitions[0].Type != gpt.EFISystemPartition || table.Partitions[0].Start != 2048 {
		t.Fatalf("partitions %+v", table.Partitions)
	}
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := fs.OpenFile(EFIBootPath, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(fh)
	want, _ := os.ReadFile(files[1])
	if !bytes.Equal(got, want) {
		t.Errorf("%s is %d bytes, the UKI %d", EFIBootPath, len(got), len(want))
	}
	cmdline, err := uki.SectionData(got, ".cmdline")
	if err != nil || string(cmdline) != "console=ttyS0 keel.test" {
		t.Errorf(".cmdline %q %v", cmdline, err)
	}
}

func TestGCPTar(t *testing.T) {
	in := testInputs(t, []byte("initrd"))
	dir := t.TempDir()
	files, err := Write(dir, "x", []Format{GCP, RawEFI}, in)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	// GNU tar's magic ("ustar  \0"), as `tar --format=oldgnu` writes.
	head := make([]byte, 512)
	io.ReadFull(zr, head)
	if string(head[257:265]) != "ustar  \x00" || !strings.HasPrefix(string(head), "disk.raw\x00") {
		t.Errorf("tar header magic %q name %q", head[257:265], head[:8])
	}
	f.Seek(0, 0)
	zr, _ = gzip.NewReader(f)
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil || h.Name != "disk.raw" {
		t.Fatalf("%v %v", h, err)
	}
	raw, _ := os.ReadFile(files[1])
	got, _ := io.ReadAll(tr)
	if !bytes.Equal(raw, got) {
		t.Error("disk.raw is not the raw-efi disk")
	}
}

func TestVHDFooter(t *testing.T) {
	in := testInputs(t, []byte("initrd"))
	dir := t.TempDir()
	files, err := Write(dir, "x", []Format{VHD, RawEFI}, in)
	if err != nil {
		t.Fatal(err)
	}
	vhd, _ := os.ReadFile(files[0])
	raw, _ := os.ReadFile(files[1])
	if len(vhd) != len(raw)+512 || !bytes.Equal(vhd[:len(raw)], raw) {
		t.Fatalf("vhd %d bytes, raw %d", len(vhd), len(raw))
	}
	f := vhd[len(raw):]
	be := binary.BigEndian
	if string(f[:8]) != "conectix" || be.Uint32(f[60:]) != 2 || be.Uint64(f[48:]) != uint64(len(raw)) || len(raw)%MiB != 0 {
		t.Errorf("footer %q type %d size %d", f[:8], be.Uint32(f[60:]), be.Uint64(f[48:]))
	}
	var sum uint32
	for i, x := range f {
		if i < 64 || i >= 68 {
			sum += uint32(x)
		}
	}
	if ^sum != be.Uint32(f[64:]) {
		t.Error("footer checksum wrong")
	}
	// QEMU reads the VHD as the raw disk, when told to trust the footer's
	// size as Azure does.
	if _, err := exec.LookPath("qemu-img"); err == nil {
		out, err := exec.Command("qemu-img", "compare", "--image-opts",
			"driver=vpc,force_size_calc=current_size,file.filename="+files[0], "driver=raw,file.filename="+files[1]).CombinedOutput()
		if err != nil {
			t.Errorf("qemu-img compare: %v: %s", err, out)
		}
	}
}

func TestNoLoaders(t *testing.T) {
	in := testInputs(t, []byte("initrd"))
	in.Loaders = nil
	if _, err := Write(t.TempDir(), "x", []Format{RawEFI}, in); err == nil || !strings.Contains(err.Error(), "keel/boot") {
		t.Errorf("err = %v", err)
	}
}

func TestQemuImgMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	in := testInputs(t, []byte("initrd"))
	_, err := Write(t.TempDir(), "x", []Format{QCOW2EFI}, in)
	if err == nil || !strings.Contains(err.Error(), "qemu-utils") {
		t.Errorf("err = %v", err)
	}
}

// Outputs made from one another are separate files: changing one (a
// boot that writes to raw-efi) leaves the others as built.
func TestOutputsAreSeparateFiles(t *testing.T) {
	in := testInputs(t, []byte("initrd"))
	dir := t.TempDir()
	files, err := Write(dir, "x", []Format{RawEFI, AWS, UKI}, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Sys().(*syscall.Stat_t).Nlink; n != 1 {
			t.Errorf("%s has %d links", filepath.Base(p), n)
		}
	}
}

// qemu-img writes the VMDK's CID without leading zeros, so its length
// varies from run to run; fixVMDKCID gives one fixed-width value whatever
// it was.
func TestFixVMDKCIDLength(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian's qemu-utils)")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	os.WriteFile(raw, make([]byte, MiB), 0o644)
	var got [][]byte
	for i, cid := range []string{"CID=1a2b3c4d", "CID=a2b3c4d"} {
		// The descriptor names its own file: the same name in both.
		sub := filepath.Join(dir, fmt.Sprint(i))
		os.Mkdir(sub, 0o755)
		p := filepath.Join(sub, "x.vmdk")
		if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, p).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		b, _ := os.ReadFile(p)
		// Put in a CID of the given width, the text shifted as qemu-img
		// would have written it.
		off := int(binary.LittleEndian.Uint64(b[28:])) * 512
		end := off + bytes.IndexByte(b[off:], 0)
		text := vmdkCID.ReplaceAll(b[off:end], []byte(cid))
		copy(b[off:], append(text, make([]byte, end-off-len(text)+1)...))
		os.WriteFile(p, b, 0o644)
		if err := fixVMDKCID(p, []byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		b, _ = os.ReadFile(p)
		got = append(got, b)
	}
	if !bytes.Equal(got[0], got[1]) {
		for i := range got[0] {
			if got[0][i] != got[1][i] {
				t.Errorf("CIDs of 8 and 7 digits give different files, from byte %#x: %q / %q", i, got[0][i:i+40], got[1][i:i+40])
				break
			}
		}
	}
	if !bytes.Contains(got[0], []byte("\nCID=11020304\n")) {
		t.Error("CID not replaced")
	}
	if out, err := exec.Command("qemu-img", "check", "-f", "vmdk", filepath.Join(dir, "0", "x.vmdk")).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check: %v: %s", err, out)
	}
}
