package initrd

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/kmod"
)

// squashfsBuild is testBuild with a kernel whose kernel.tar has the
// modules the squashfs initrd takes, and one it leaves.
func squashfsBuild(t *testing.T) Build {
	b := testBuild(t)
	var mods []tarEntry
	mods = append(mods, tarEntry{"lib/modules/6.1.0-t/", ""})
	for _, m := range append([]string{"virtio_net"}, bundle.SquashfsModules...) {
		mods = append(mods, tarEntry{"lib/modules/6.1.0-t/kernel/" + m + ".ko", "not ELF " + m})
	}
	b.Kernel.Image = testImage(t, tarEntry{"kernel", "bzImage"}, tarEntry{"kernel.tar", tarBytesOf(t, mods...)},
		tarEntry{"ucode.cpio", "070701 early microcode, 30 B!!"})
	return b
}

// gptPartName reads the name of the first partition of a GPT disk.
func gptPartName(t *testing.T, disk []byte) string {
	t.Helper()
	if string(disk[512:520]) != "EFI PART" {
		t.Fatal("no GPT header at LBA 1")
	}
	entries := binary.LittleEndian.Uint64(disk[512+72:])
	e := disk[entries*512:]
	var u []uint16
	for i := 56; i < 128; i += 2 {
		if c := binary.LittleEndian.Uint16(e[i:]); c != 0 {
			u = append(u, c)
		}
	}
	return string(utf16.Decode(u))
}

func TestWriteKernelSquashfs(t *testing.T) {
	b := squashfsBuild(t)
	o := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelSquashfs}}
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(o.Dir)
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if want := []string{"x-cmdline", "x-kernel", "x-squashfs-initrd.img", "x-squashfs.img"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outputs %q, want %q (no full initrd)", got, want)
	}
	disk, _ := os.ReadFile(o.SquashfsDisk())
	if string(disk[diskAlign:diskAlign+4]) != "hsqs" {
		t.Error("no squashfs at 1 MiB into the disk")
	}
	part := gptPartName(t, disk)
	if !strings.HasPrefix(part, "keel-") || len(part) != 29 {
		t.Errorf("partition name %q", part)
	}
	small, _ := os.ReadFile(o.SquashfsInitrd())
	if !bytes.HasPrefix(small, []byte("070701 early microcode")) {
		t.Error("the small initrd does not start with the microcode")
	}
	names, data := readInitrd(t, Gzip, small)
	if data[strings.TrimPrefix(bundle.SquashfsRootFile, "/")] != part+"\n" {
		t.Errorf("%s = %q, want the partition name %q", bundle.SquashfsRootFile, data[strings.TrimPrefix(bundle.SquashfsRootFile, "/")], part)
	}
	if data["init"] != "#!pid1" {
		t.Errorf("init = %q", data["init"])
	}
	for _, m := range bundle.SquashfsModules {
		if _, ok := data["lib/modules/6.1.0-t/kernel/"+m+".ko"]; !ok {
			t.Errorf("small initrd lacks %s: %q", m, names)
		}
		if !strings.Contains(data[kmod.IndexPath], `"`+m+`"`) {
			t.Errorf("small index lacks %s", m)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "virtio_net") || strings.HasPrefix(n, "containers") || n == "sbin/init" {
			t.Errorf("small initrd holds %s", n)
		}
	}
	if strings.Contains(data[kmod.IndexPath], "virtio_net") {
		t.Error("small index lists virtio_net")
	}

	// The same build again: the same bytes, disk and initrd.
	o2 := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelSquashfs}}
	if err := Write(o2, squashfsBuild(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{o.SquashfsDisk(), o2.SquashfsDisk()}, {o.SquashfsInitrd(), o2.SquashfsInitrd()}} {
		a, _ := os.ReadFile(p[0])
		b, _ := os.ReadFile(p[1])
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds", filepath.Base(p[0]))
		}
	}
}

func TestKernelSquashfsNeedsItsModules(t *testing.T) {
	b := testBuild(t) // its kernel.tar has virtio_net only
	o := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelSquashfs}}
	err := Write(o, b)
	if err == nil || !strings.Contains(err.Error(), "kernel+squashfs needs virtio_pci") {
		t.Fatalf("Write = %v, want an error naming the modules kernel+squashfs needs", err)
	}
}

// An init image with the small init (bundle.SquashfsInitFile): it is the
// small initrd's /init, and neither the full initrd nor the disk holds it.
func TestSquashfsSmallInit(t *testing.T) {
	b := squashfsBuild(t)
	small := "\x7fELF the small init" // ELF: stored raw on the disk, so a search would find it
	b.Contents.Init = []Image{{Ref: "keel/init:t", Image: testImage(t, tarEntry{"init", "#!pid1"}, tarEntry{"sbin/", ""},
		tarEntry{"sbin/init=>init", ""}, tarEntry{bundle.SquashfsInitFile, small})}}
	o := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelInitrd, FormatKernelSquashfs}}
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	smallRD, _ := os.ReadFile(o.SquashfsInitrd())
	names, data := readInitrd(t, Gzip, smallRD)
	if data["init"] != small {
		t.Errorf("the small initrd's init = %q, want the small init", data["init"])
	}
	for _, n := range names {
		if n == bundle.SquashfsInitFile || n == "sbin/init" {
			t.Errorf("small initrd holds %s", n)
		}
	}
	full, _ := os.ReadFile(o.Initrd())
	names, data = readInitrd(t, Gzip, full)
	if data["init"] != "#!pid1" {
		t.Errorf("the full initrd's init = %q, want PID 1", data["init"])
	}
	for _, n := range names {
		if strings.HasPrefix(n, bundle.SquashfsInitFile) {
			t.Errorf("the full initrd holds %s", n)
		}
	}
	if disk, _ := os.ReadFile(o.SquashfsDisk()); bytes.Contains(disk, []byte(small)) {
		t.Error("the squashfs disk holds the small init")
	}
}
