package main

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
)

// iomem192 is /proc/iomem of a QEMU pc guest started with -m 192.
const iomem192 = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-0bfdffff : System RAM
  01000000-01bfffff : Kernel code
    01100000-01100fff : System RAM
  01c00000-0207ffff : Kernel rodata
0bfe0000-0bffffff : Reserved
fffc0000-ffffffff : Reserved
`

// fakeSys writes boot parameters with an initrd of initrdMB, /proc/iomem
// and a meminfo with MemTotal memTotalKB.
func fakeSys(t *testing.T, initrdMB uint32, iomem string, memTotalKB int) sysFiles {
	t.Helper()
	dir := t.TempDir()
	s := sysFiles{filepath.Join(dir, "boot_params"), filepath.Join(dir, "iomem"), filepath.Join(dir, "meminfo")}
	bp := make([]byte, 0x230)
	binary.LittleEndian.PutUint32(bp[0x21c:], initrdMB<<20)
	os.WriteFile(s.bootParams, bp, 0o644)
	os.WriteFile(s.iomem, []byte(iomem), 0o444)
	os.WriteFile(s.meminfo, []byte("MemTotal:       "+strconv.Itoa(memTotalKB)+" kB\nMemFree:          1000 kB\n"), 0o444)
	return s
}

func TestCheckInitrd(t *testing.T) {
	root := t.TempDir()
	// -m 192, 160 MiB in MemTotal after boot, a 27 MiB initrd.
	sys := fakeSys(t, 27, iomem192, 160<<10)
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	if !checkInitrd(log, root, sys) {
		t.Fatal("an initrd without seals (an older keel build) counted as incomplete")
	}
	if err := os.MkdirAll(filepath.Join(root, bundle.SealsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	// The list of an older keel: names only, no figure.
	os.WriteFile(filepath.Join(root, bundle.SealsExpected), []byte("root\ncontainers/services/web\n"), 0o644)
	os.WriteFile(filepath.Join(root, bundle.SealsDir, "root"), nil, 0o444)
	if checkInitrd(log, root, sys) {
		t.Fatal("an initrd missing its web segment counted as complete")
	}
	for _, want := range []string{"initrd incomplete", "containers/services/web", bootFailed + ": the initrd did not fit", "initrd=27MB", "mem=192MB", "keel run -mem MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "needs=") {
		t.Errorf("a figure from a list without sizes:\n%s", out.String())
	}
	// This keel's list: 75 MiB in all.
	out.Reset()
	os.WriteFile(filepath.Join(root, bundle.SealsTmpfs), []byte("root 73400320\ncontainers/services/web 5242880\n"), 0o644)
	if checkInitrd(log, root, sys) {
		t.Fatal("an initrd missing its web segment counted as complete")
	}
	for _, want := range []string{"needs=240MB mem=192MB unpacked=75MB initrd=27MB", `hint="keel run -mem 240"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	os.WriteFile(filepath.Join(root, bundle.SealsDir, "containers_services_web"), nil, 0o444)
	if !checkInitrd(log, root, sys) {
		t.Fatal("a whole initrd counted as incomplete")
	}
	if initrdSize(filepath.Join(root, "none")) != 0 {
		t.Error("initrdSize of a missing file")
	}
}

func TestMemoryFigures(t *testing.T) {
	sys := fakeSys(t, 27, iomem192, 163840)
	const ram192 = 0x9ec00 + 0xbee0000 // the top-level System RAM ranges
	if got := systemRAM(sys.iomem); got != ram192 {
		t.Errorf("systemRAM = %d, want %d", got, ram192)
	}
	if got := memTotal(sys.meminfo); got != 160<<20 {
		t.Errorf("memTotal = %d, want 160 MiB", got)
	}
	if systemRAM("/nonexistent") != 0 || memTotal("/nonexistent") != 0 {
		t.Error("figures from missing files")
	}

	const mb = 1 << 20
	for _, c := range []struct {
		name                         string
		tmpfs, ram, memTotal, initrd uint64
		want                         uint64
	}{
		// 75 MiB to unpack; the rootfs was mounted with (160−27)/2 MiB:
		// 17 MiB short, and a 64th of it for struct pages, 16 MiB margin:
		// 191.5+17+0.3+16 = 224.8, rounded up to 240.
		{"demo at 192", 75 * mb, ram192, 160 * mb, 27 * mb, 240 * mb},
		// Enough already (the seals are missing for another reason):
		// the margin only.
		{"fits", 10 * mb, ram192, 160 * mb, 27 * mb, 208 * mb},
		// A large image: 1 GiB to unpack in a 512 MiB VM, 180 MiB at
		// mount: 512+1868+29.7+16 = 2425.7, rounded up to 2432.
		{"large", 1024 * mb, 512 * mb, 480 * mb, 300 * mb, 2432 * mb},
		// No boot parameters (not x86): MemTotal alone.
		{"no initrd size", 75 * mb, ram192, 160 * mb, 0, 208 * mb},
	} {
		if got := memoryNeeded(c.tmpfs, c.ram, c.memTotal, c.initrd); got != c.want {
			t.Errorf("%s: memoryNeeded = %d MiB, want %d MiB", c.name, got/mb, c.want/mb)
		}
	}
}
