package mount

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// TmpfsKind names a tmpfs PID 1 mounts, for its size limit.
type TmpfsKind string

// The tmpfs mounts that get a size limit.
const (
	TmpfsRun     TmpfsKind = "run"     // /run
	TmpfsTmp     TmpfsKind = "tmp"     // /tmp
	TmpfsVar     TmpfsKind = "var"     // /var
	TmpfsShm     TmpfsKind = "shm"     // /dev/shm
	TmpfsOverlay TmpfsKind = "overlay" // one bundle's overlay writable layer
)

// tmpfsPercent is each kind's limit, in percent of MemTotal.
//
// A tmpfs without size= may take 50% of RAM, and the kernel lets each of
// them do so: four of them could together ask for twice the machine while
// the root filesystem, itself a tmpfs holding the whole image, the kernel
// and every process need RAM too. The system ones here add up to 50%, so
// that even when all are full the other half stays for the kernel, the
// image in the root tmpfs and the services:
//   - /var 25%: service logs (/var/log) and containerd's state and content
//     (/var/lib/containerd) are the biggest writers;
//   - /run 10%: sockets, pid files, runc and containerd runtime state;
//   - /tmp 10%: scratch space;
//   - /dev/shm 5%: POSIX shared memory, little used by services.
//
// A bundle's overlay writable layer is what a container writes into its
// own root filesystem; 10% each lets one write a fair amount while a
// runaway container cannot fill the machine on its own. These are limits,
// not reservations: tmpfs takes only what is written.
var tmpfsPercent = map[TmpfsKind]uint64{
	TmpfsVar:     25,
	TmpfsRun:     10,
	TmpfsTmp:     10,
	TmpfsShm:     5,
	TmpfsOverlay: 10,
}

// minTmpfs is the least any of them gets, so that a very small VM still
// has room for a few sockets and log files.
const minTmpfs = 4 << 20

// TmpfsSize is the size limit in bytes for a tmpfs of kind on a machine
// with memTotal bytes of RAM (MemTotal in /proc/meminfo), rounded down to
// whole KiB. It is 0, meaning no limit of keel's, for an unknown kind or
// memTotal 0.
func TmpfsSize(kind TmpfsKind, memTotal uint64) uint64 {
	pct, ok := tmpfsPercent[kind]
	if !ok || memTotal == 0 {
		return 0
	}
	size := memTotal / 100 * pct
	if size < minTmpfs {
		size = minTmpfs
	}
	return size &^ 1023
}

// tmpfsSizeData is the size= option for kind on a machine with memTotal
// bytes, or "" when there is no limit to give.
func tmpfsSizeData(kind TmpfsKind, memTotal uint64) string {
	size := TmpfsSize(kind, memTotal)
	if size == 0 {
		return ""
	}
	return fmt.Sprintf("size=%dk", size>>10)
}

// MemTotal is the machine's RAM in bytes, as MemTotal in /proc/meminfo;
// sysinfo(2) gives it without /proc being mounted.
func MemTotal() (uint64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("sysinfo: %w", err)
	}
	return uint64(si.Totalram) * uint64(si.Unit), nil
}

// TmpfsSizeOption is the tmpfs mount option ("size=123456k") limiting a
// tmpfs of kind on this machine, to be joined to the other data options
// with a comma. It is "" when the machine's RAM cannot be read (the kernel
// then applies its default of half the RAM).
func TmpfsSizeOption(kind TmpfsKind) string {
	mem, err := MemTotal()
	if err != nil {
		return ""
	}
	return tmpfsSizeData(kind, mem)
}
