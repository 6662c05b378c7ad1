package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bootimage"
	"github.com/keel-os/keel/pkg/oci"
	"github.com/keel-os/keel/pkg/uki/ukitest"
)

func checkUKI(t *testing.T, stub, img []byte, p testData) {
	t.Helper()
	orig, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("UKI does not parse as PE: %v", err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	n := len(orig.Sections)
	if len(f.Sections) != n+4 {
		t.Fatalf("%d sections, want %d", len(f.Sections), n+4)
	}
	// The stub's own sections are untouched.
	for i, s := range orig.Sections {
		if f.Sections[i].SectionHeader != s.SectionHeader {
			t.Errorf("stub section %s changed: %+v -> %+v", s.Name, s.SectionHeader, f.Sections[i].SectionHeader)
		}
	}
	want := []struct {
		name string
		data []byte
	}{{".osrel", []byte(p.OSRelease)}, {".cmdline", []byte(p.Cmdline)}, {".initrd", p.Initrd}, {".linux", p.Kernel}}
	prev := orig.Sections[n-1]
	end := prev.VirtualAddress + max(prev.VirtualSize, prev.Size)
	for i, w := range want {
		s := f.Sections[n+i]
		if s.Name != w.name {
			t.Errorf("section %d is %s, want %s", n+i, s.Name, w.name)
		}
		if s.VirtualAddress%oh.SectionAlignment != 0 || s.Offset%oh.FileAlignment != 0 || s.Size%oh.FileAlignment != 0 {
			t.Errorf("%s misaligned: VMA %#x offset %#x raw size %#x", s.Name, s.VirtualAddress, s.Offset, s.Size)
		}
		if s.VirtualAddress < end {
			t.Errorf("%s at %#x overlaps what ends at %#x", s.Name, s.VirtualAddress, end)
		}
		end = s.VirtualAddress + s.VirtualSize
		if s.Characteristics != pe.IMAGE_SCN_CNT_INITIALIZED_DATA|pe.IMAGE_SCN_MEM_READ {
			t.Errorf("%s characteristics %#x", s.Name, s.Characteristics)
		}
		got, err := SectionData(img, w.name)
		if err != nil || !bytes.Equal(got, w.data) {
			t.Errorf("%s holds %d bytes (%v), want the %d given", w.name, len(got), err, len(w.data))
		}
	}
	if want := (end + oh.SectionAlignment - 1) / oh.SectionAlignment * oh.SectionAlignment; oh.SizeOfImage != want {
		t.Errorf("SizeOfImage %#x, want %#x", oh.SizeOfImage, want)
	}
	// The checksum, made while streaming, is that of the whole file.
	field := int(binary.LittleEndian.Uint32(img[0x3c:])) + 4 + 20 + 64
	if sum := checksum(img, field); oh.CheckSum != sum {
		t.Errorf("checksum %#x, the file's is %#x", oh.CheckSum, sum)
	}
}

// testData is what the test UKIs hold.
type testData struct {
	Kernel, Initrd     []byte
	Cmdline, OSRelease string
}

func testParts() testData {
	return testData{
		Kernel:    bytes.Repeat([]byte("kernel"), 1000),
		Initrd:    bytes.Repeat([]byte("initrd!"), 333),
		Cmdline:   "console=ttyS0 quiet",
		OSRelease: "ID=keel\nNAME=keel\n",
	}
}

// Build writes a UKI of d into memory.
func Build(stub []byte, d testData) ([]byte, error) {
	var b bytes.Buffer
	err := Write(&b, stub, Parts{Kernel: Bytes("", d.Kernel), Initrd: Bytes("", d.Initrd), Cmdline: d.Cmdline, OSRelease: d.OSRelease})
	return b.Bytes(), err
}

func addSections(stub []byte, secs []Section) error { return AddSections(io.Discard, stub, secs) }

func TestBuildFakeStub(t *testing.T) {
	stub := ukitest.Stub()
	img, err := Build(stub, testParts())
	if err != nil {
		t.Fatal(err)
	}
	checkUKI(t, stub, img, testParts())
	again, _ := Build(stub, testParts())
	if !bytes.Equal(img, again) {
		t.Error("two builds differ")
	}
}

func TestBuildErrors(t *testing.T) {
	stub := ukitest.Stub()
	if _, err := Build([]byte("not a PE"), testParts()); err == nil || !strings.Contains(err.Error(), "not a PE") {
		t.Errorf("err = %v", err)
	}
	if _, err := Build(stub, testData{}); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("err = %v", err)
	}
	if err := addSections(stub, []Section{Bytes(".text", nil)}); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Errorf("err = %v", err)
	}
	if err := addSections(stub, []Section{Bytes(".waytoolongname", nil)}); err == nil {
		t.Error("long name accepted")
	}
	// Headers full: SizeOfHeaders leaves room for 1 + (0x400-0x148-40)/40 = 16 sections.
	many := make([]Section, 20)
	for i := range many {
		many[i] = Bytes(".s"+string(rune('a'+i)), nil)
	}
	if err := addSections(stub, many); err == nil || !strings.Contains(err.Error(), "room for") {
		t.Errorf("err = %v", err)
	}
	signed := append([]byte(nil), stub...)
	binary.LittleEndian.PutUint32(signed[0x58+112+8*4+4:], 0x100)
	if _, err := Build(signed, testParts()); err == nil || !strings.Contains(err.Error(), "signed") {
		t.Errorf("err = %v", err)
	}
}

// TestRealStub adds the sections to the real systemd-stub, and checks the
// checksum against the one its linker wrote.
func TestRealStub(t *testing.T) {
	stub := realStub(t)
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	if want := f.OptionalHeader.(*pe.OptionalHeader64).CheckSum; want != 0 {
		if got := checksum(stub, int(binary.LittleEndian.Uint32(stub[0x3c:]))+4+20+64); got != want {
			t.Errorf("checksum of the stub %#x, its header says %#x", got, want)
		}
	}
	img, err := Build(stub, testParts())
	if err != nil {
		t.Fatal(err)
	}
	checkUKI(t, stub, img, testParts())
}

// realStub is systemd-stub: the file KEEL_TEST_EFI_STUB names, else the
// one in keel/boot in the image cache (make images makes it).
func realStub(t *testing.T) []byte {
	t.Helper()
	if p := os.Getenv("KEEL_TEST_EFI_STUB"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cache, err := oci.OpenCache(oci.DefaultCacheDir())
	if err != nil {
		t.Skipf("no image cache (%v): set KEEL_TEST_EFI_STUB or run make images", err)
	}
	img, err := cache.Image(bootimage.DefaultRef)
	if err != nil {
		t.Skipf("%s not in the cache (%v): set KEEL_TEST_EFI_STUB or run make images", bootimage.DefaultRef, err)
	}
	l, err := bootimage.Read(bootimage.DefaultRef, img)
	if err != nil {
		t.Fatal(err)
	}
	return l[bootimage.EFIStub]
}
