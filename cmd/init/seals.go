package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/keel-os/keel/pkg/bundle"
)

// bootFailed starts the console line that tells keel run (and a person)
// that PID 1 gave up booting: keel run then exits non-zero.
const bootFailed = "boot failed"

// sysFiles names the kernel's files checkInitrd reads to work out the
// memory the VM needs; tests give fakes.
type sysFiles struct {
	// bootParams is the x86 boot parameters (initrdSize).
	bootParams string
	// iomem is /proc/iomem: its "System RAM" ranges add up to the VM's
	// memory, the -m of QEMU.
	iomem string
	// meminfo is /proc/meminfo, for MemTotal.
	meminfo string
}

var guestSys = sysFiles{bootParams: "/sys/kernel/boot_params/data", iomem: "/proc/iomem", meminfo: "/proc/meminfo"}

// checkInitrd reports whether the initrd was unpacked whole: every
// segment's seal is there (bundle.SealsDir). When the guest's memory
// cannot hold the unpacked initrd, the kernel logs "Initramfs unpacking
// failed" and boots on with part of it; running that part would be a
// silent, partial success. What is missing and the memory the VM needs
// are logged.
func checkInitrd(log *slog.Logger, root string, sys sysFiles) bool {
	missing, total, err := bundle.MissingSeals(root)
	if err != nil {
		log.Error("initrd check", "err", err)
		return true // an unreadable list is not proof of a truncation
	}
	if len(missing) == 0 {
		return true
	}
	shown := missing
	if len(shown) > 5 {
		shown = shown[:5]
	}
	log.Error("initrd incomplete: the kernel did not unpack all of it", "missing", len(missing), "segments", total,
		"first", strings.Join(shown, ","))
	initrd := initrdSize(sys.bootParams)
	memTotal := memTotal(sys.meminfo)
	ram := systemRAM(sys.iomem)
	if ram < memTotal { // /proc/iomem unreadable (or zeros): MemTotal, a little less than the VM has
		ram = memTotal
	}
	const msg = bootFailed + ": the initrd did not fit in this VM's memory; nothing is run"
	seals, _ := bundle.ExpectedSeals(root)
	unpacked, ok := bundle.SealsBytes(seals)
	if !ok || memTotal == 0 {
		// An initrd of an older keel does not say what it unpacks to.
		log.Error(msg, "mem", mib(ram), "initrd", mib(initrd), "hint", "give the VM more memory (keel run -mem MiB)")
		return false
	}
	needs := memoryNeeded(uint64(unpacked), ram, memTotal, initrd) >> 20
	log.Error(msg, "needs", fmt.Sprintf("%dMB", needs), "mem", mib(ram), "unpacked", mib(uint64(unpacked)),
		"initrd", mib(initrd), "hint", fmt.Sprintf("keel run -mem %d", needs))
	return false
}

// mib writes a size in MiB, rounded up, as "12MB".
func mib(n uint64) string { return fmt.Sprintf("%dMB", (n+1<<20-1)>>20) }

// needsMargin is added to the memory a VM needs (memoryNeeded). MemTotal
// now counts memory the kernel freed after it mounted the rootfs, which
// the tmpfs limit did not count: its init code and data and the gaps
// between its sections (keel's kernel at boot: "Freeing unused ..." 2036K
// decrypted, 2612K initmem, 2040K text/rodata gap, 1892K rodata/data gap,
// 8.6 MB in all); the rest is slack for the kernel's own reservations,
// which grow with the memory, and for what runs beside the files.
const needsMargin = 16 << 20

// memoryNeeded is the memory (QEMU's -m, in bytes, a multiple of 16 MiB)
// a VM needs for its rootfs tmpfs to hold the unpacked initrd, tmpfs
// bytes, given what this VM has: ram (its -m), memTotal (MemTotal now)
// and the compressed initrd's size. The kernel mounts the rootfs with a
// limit of half the memory it counts then; the initrd was still in memory
// (it is freed after unpacking), so that was memTotal − initrd. The VM
// needs 2×tmpfs there: the deficit more memory, and a 64th more (each
// 4 KiB page added costs 64 bytes of struct page, never in MemTotal),
// and needsMargin.
func memoryNeeded(tmpfs, ram, memTotal, initrd uint64) uint64 {
	var atMount uint64
	if memTotal > initrd {
		atMount = memTotal - initrd
	}
	var deficit uint64
	if 2*tmpfs > atMount {
		deficit = 2*tmpfs - atMount
	}
	const unit = 16 << 20
	need := ram + deficit + deficit/63 + needsMargin
	return (need + unit - 1) / unit * unit
}

// systemRAM adds up the "System RAM" ranges at the top of /proc/iomem
// (at path): the memory the VM was given, less a few firmware holes
// below 1 MiB. 0 when it cannot be read; next to nothing when it shows
// zeros (to a process without CAP_SYS_ADMIN).
func systemRAM(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var total uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") { // nested: parts of a range above
			continue
		}
		span, name, ok := strings.Cut(line, " : ")
		if !ok || strings.TrimSpace(name) != "System RAM" {
			continue
		}
		from, to, ok := strings.Cut(strings.TrimSpace(span), "-")
		if !ok {
			continue
		}
		f, err1 := strconv.ParseUint(from, 16, 64)
		t, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || t < f {
			continue
		}
		total += t - f + 1
	}
	return total
}

// memTotal reads MemTotal, in bytes, from /proc/meminfo (at path); 0 when
// it cannot be read.
func memTotal(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n << 10
				}
			}
		}
	}
	return 0
}

// initrdSize reads the initrd's size from the kernel's boot parameters
// (x86 boot protocol: ramdisk_size at 0x21c, its high half at 0xc0); 0
// when they cannot be read.
func initrdSize(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 0x220 {
		return 0
	}
	return uint64(binary.LittleEndian.Uint32(b[0x21c:])) | uint64(binary.LittleEndian.Uint32(b[0xc0:]))<<32
}
