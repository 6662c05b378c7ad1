package main

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/keel-os/keel/pkg/bundle"
	"golang.org/x/sys/unix"
)

// bootFailed starts the console line that tells keel run (and a person)
// that PID 1 gave up booting: keel run then exits non-zero.
const bootFailed = "boot failed"

// checkInitrd reports whether the initrd was unpacked whole: every
// segment's seal is there (bundle.SealsDir). When the guest's memory
// cannot hold the unpacked initrd, the kernel logs "Initramfs unpacking
// failed" and boots on with part of it; running that part would be a
// silent, partial success. What is missing and what memory there is are
// logged.
func checkInitrd(log *slog.Logger, root, bootParams string) bool {
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
	var si unix.Sysinfo_t
	mem := uint64(0)
	if unix.Sysinfo(&si) == nil {
		mem = uint64(si.Totalram) * uint64(si.Unit) >> 20
	}
	// The gzip'd initrd unpacks to about 2.5 times its size (keel build
	// prints both); the VM needs that and room for what it runs.
	size := initrdSize(bootParams) >> 20
	log.Error(bootFailed+": the initrd did not fit in this VM's memory; nothing is run",
		"mem", fmt.Sprintf("%dMB", mem), "initrd", fmt.Sprintf("%dMB", size),
		"unpacked", fmt.Sprintf("about %dMB", size*5/2), "hint", "give the VM more memory (keel run -mem MiB)")
	return false
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
