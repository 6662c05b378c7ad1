package vmlinux

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/keel-os/keel/pkg/testenv"
)

// fakeBzImage wraps payload (an already compressed stream) in a setup
// header the way the kernel's build lays it out.
func fakeBzImage(payload []byte, size uint32) []byte {
	b := make([]byte, 5*512)
	le := binary.LittleEndian
	b[offSetupSects] = 4
	copy(b[offHeaderMagic:], "HdrS")
	le.PutUint16(b[offVersion:], 0x20f)
	le.PutUint32(b[offPayloadOff:], 0x100)
	le.PutUint64(b[offPrefAddress:], 0x1000000)
	pm := make([]byte, 0x100)
	full := append(append([]byte(nil), payload...), 0, 0, 0, 0)
	le.PutUint32(full[len(payload):], size)
	le.PutUint32(b[offPayloadLen:], uint32(len(full)))
	return append(append(b, pm...), full...)
}

func TestExtractGzipELF(t *testing.T) {
	// Any ELF will do: the test binary itself.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	elfBytes, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(elfBytes)
	zw.Close()
	got, err := Extract(fakeBzImage(z.Bytes(), uint32(len(elfBytes))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, elfBytes) {
		t.Error("extracted bytes differ")
	}
	if _, err := Extract(fakeBzImage(z.Bytes(), uint32(len(elfBytes))+1)); err == nil || !strings.Contains(err.Error(), "trailer says") {
		t.Errorf("wrong size trailer: err = %v", err)
	}
}

func TestExtractErrors(t *testing.T) {
	if _, err := Extract([]byte("MZ not a kernel")); err == nil || !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("err = %v", err)
	}
	if _, err := Extract(fakeBzImage([]byte("BZh91AY&SY"), 10)); err == nil || !strings.Contains(err.Error(), "bzip2-compressed") {
		t.Errorf("err = %v", err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("plain text, not an ELF"))
	zw.Close()
	if _, err := Extract(fakeBzImage(z.Bytes(), 22)); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("err = %v", err)
	}
}

// TestRealKernel takes vmlinux out of Debian's kernel: the kernel file
// beside KEEL_TEST_KERNEL_TAR (tools/kerneltree writes both).
func TestRealKernel(t *testing.T) {
	tarPath := testenv.Env(t, "KEEL_TEST_KERNEL_TAR", "make test-go sets it; the bzImage is the kernel file beside it")
	bz, err := os.ReadFile(filepath.Join(filepath.Dir(tarPath), "kernel"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(bz)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("payload %s, %d bytes at %#x", h.Codec, h.Length, h.Offset)
	out, err := Extract(bz)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v, want an x86-64 executable", f.Machine, f.Class, f.Type)
	}
	// The entry is startup_64's physical address, where the setup header
	// says the kernel prefers to be loaded.
	if f.Entry != h.PrefAddress {
		t.Errorf("ELF entry %#x, setup header's pref_address %#x", f.Entry, h.PrefAddress)
	}
	var load bool
	for _, p := range f.Progs {
		load = load || p.Type == elf.PT_LOAD && p.Paddr <= f.Entry && f.Entry < p.Paddr+p.Memsz
	}
	if !load {
		t.Error("no PT_LOAD segment holds the entry point")
	}
	t.Logf("vmlinux %d bytes, entry %#x", len(out), f.Entry)
}
