package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "crun.tar.gz")
	if err := os.WriteFile(p, []byte("not crun"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not crun"))
	good := hex.EncodeToString(sum[:])
	if err := checkSHA256(p, good); err != nil {
		t.Errorf("right sum refused: %v", err)
	}
	want := "4bfb700e764a4804a4de3ecf07753f4c391005356d60356df65d80ae0914c486"
	err := checkSHA256(p, want)
	if err == nil || !strings.Contains(err.Error(), "sha256 is "+good+", want "+want) {
		t.Errorf("wrong file: err = %v, want one naming both sums", err)
	}
	if err := checkSHA256(filepath.Join(t.TempDir(), "absent"), want); err == nil {
		t.Error("absent file: no error")
	}
}

// staticELF is the smallest x86-64 program ELF debug/elf reads: a header
// and one PT_LOAD, no interpreter.
func staticELF(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: 0x401000, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	prog := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000, Filesz: 120, Memsz: 120, Align: 0x1000}
	if err := binary.Write(&b, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&b, binary.LittleEndian, prog); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCheckStaticELF(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "static")
	if err := os.WriteFile(static, staticELF(t), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStaticELF(static); err != nil {
		t.Errorf("static program refused: %v", err)
	}

	// Debian's true is a dynamic program.
	err := checkStaticELF("/bin/true")
	if err == nil || !strings.Contains(err.Error(), "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2)") {
		t.Errorf("/bin/true: err = %v, want dynamically linked", err)
	}

	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho crun version 1.21\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStaticELF(script); err == nil {
		t.Error("a shell script passed as a static ELF program")
	}
}

func TestCrunVersionIs(t *testing.T) {
	out := "crun version 1.21\ncommit: 10269840aa07fb7e6b7e1acff6198692d8ff5c88\nrundir: /run/crun\n"
	if err := crunVersionIs(out, "1.21"); err != nil {
		t.Error(err)
	}
	for _, v := range []string{"1.2", "1.21.1"} {
		if err := crunVersionIs(out, v); err == nil {
			t.Errorf("crun 1.21 taken for %s", v)
		}
	}
	if err := crunVersionIs("", "1.21"); err == nil {
		t.Error("no output taken for crun 1.21")
	}
}

func TestPoolDir(t *testing.T) {
	for src, want := range map[string]string{"crun": "c", "libseccomp": "libs", "lib": "l"} {
		if got := poolDir(src); got != want {
			t.Errorf("poolDir(%q) = %q, want %q", src, got, want)
		}
	}
}

type tarEntry struct {
	hdr  tar.Header
	body string
}

func tarOf(t *testing.T, entries ...tarEntry) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.body))
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}

func TestExtractTar(t *testing.T) {
	old := time.Date(2025, 3, 28, 8, 15, 0, 0, time.UTC)
	older := old.Add(-time.Hour)
	dir := t.TempDir()
	err := extractTar(tarOf(t,
		tarEntry{hdr: tar.Header{Name: "crun-1.21/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: older}},
		tarEntry{hdr: tar.Header{Name: "crun-1.21/configure", Typeflag: tar.TypeReg, Mode: 0o755, ModTime: old}, body: "#!/bin/sh\n"},
		tarEntry{hdr: tar.Header{Name: "crun-1.21/src/signals.perf", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: older}, body: "%%\n"},
		tarEntry{hdr: tar.Header{Name: "crun-1.21/src/api/signals.perf", Typeflag: tar.TypeLink, Linkname: "crun-1.21/src/signals.perf"}},
		tarEntry{hdr: tar.Header{Name: "crun-1.21/src/link", Typeflag: tar.TypeSymlink, Linkname: "api/signals.perf"}},
		tarEntry{hdr: tar.Header{Name: "crun-1.21/self", Typeflag: tar.TypeSymlink, Linkname: "."}},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "crun-1.21", "configure"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 || !st.ModTime().Equal(old) {
		t.Errorf("configure: mode %v, time %v; want 0755, %v", st.Mode(), st.ModTime(), old)
	}
	if st, err := os.Stat(filepath.Join(dir, "crun-1.21")); err != nil || !st.ModTime().Equal(older) {
		t.Errorf("directory's time: %v, %v; want %v", st.ModTime(), err, older)
	}
	a, errA := os.Stat(filepath.Join(dir, "crun-1.21/src/signals.perf"))
	b, errB := os.Stat(filepath.Join(dir, "crun-1.21/src/api/signals.perf"))
	if errA != nil || errB != nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("hard link is not one file with its target (%v, %v)", errA, errB)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "crun-1.21/src/link")); err != nil || string(got) != "%%\n" {
		t.Errorf("symbolic link reads %q, %v", got, err)
	}

	for name, e := range map[string]tarEntry{
		"parent":        {hdr: tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"inner parent":  {hdr: tar.Header{Name: "crun-1.21/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"absolute":      {hdr: tar.Header{Name: "/tmp/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"link out":      {hdr: tar.Header{Name: "crun-1.21/x", Typeflag: tar.TypeLink, Linkname: "../etc/passwd"}},
		"symlink out":   {hdr: tar.Header{Name: "crun-1.21/x", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}},
		"symlink abs":   {hdr: tar.Header{Name: "crun-1.21/x", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		"device":        {hdr: tar.Header{Name: "crun-1.21/null", Typeflag: tar.TypeChar, Mode: 0o666}},
		"existing file": {hdr: tar.Header{Name: "crun-1.21/configure", Typeflag: tar.TypeReg, Mode: 0o644}},
	} {
		if err := extractTar(tarOf(t, e), dir); err == nil {
			t.Errorf("%s: entry %q (%q) extracted", name, e.hdr.Name, e.hdr.Linkname)
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "evil")); err == nil {
		t.Error("an entry was written outside the directory")
	}
}

func TestCrunComplete(t *testing.T) {
	tools := t.TempDir()
	dir := filepath.Join(tools, "crun-1.21")
	os.Mkdir(dir, 0o755)
	stamp := crunStamp("4bfb")
	if crunComplete(dir, stamp) {
		t.Error("empty directory complete")
	}
	os.WriteFile(filepath.Join(dir, "crun"), staticELF(t), 0o755)
	if crunComplete(dir, stamp) {
		t.Error("complete with no build stamp")
	}
	os.WriteFile(filepath.Join(dir, buildStampFile), []byte(crunStamp("other")), 0o644)
	if crunComplete(dir, stamp) {
		t.Error("complete with another tarball's build stamp")
	}
	os.WriteFile(filepath.Join(dir, buildStampFile), []byte(stamp), 0o644)
	if !crunComplete(dir, stamp) {
		t.Error("not complete with crun and its build stamp")
	}
	// A complete build is taken as it is: no download, no build.
	got, built, err := ensureCrun(context.Background(), tools, filepath.Join(t.TempDir(), "downloads"), "1.21", "4bfb")
	if err != nil || built || got != dir {
		t.Errorf("ensureCrun = %q, %t, %v; want %q from the cache", got, built, err, dir)
	}
}
