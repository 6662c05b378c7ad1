// Command squashfsinit is the /init of a kernel+squashfs build's small
// initrd: it puts the disk's squashfs in place as the root
// (pkg/squashfsroot) and runs the disk's /init, keel's PID 1, in its
// place.
//
// Why not PID 1 itself, as before: PID 1's binary (33.6 MB, containerd
// within) then had to be in the small initrd as well as on the disk, for
// the kernel to inflate before anything ran, and it was re-executed from
// the disk anyway, to free the initrd's copy. This program is a few MB.
//
// It never exits: it is PID 1 while it runs. When the root cannot be put
// in place it says so on the console, in the words keel run looks for,
// and halts the machine.
package main

import (
	"log/slog"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/initsig"
	"github.com/keel-os/keel/pkg/squashfsroot"
)

func main() {
	// A Go PID 1 dies of these from kill(2) unless it takes them; PID 1
	// on the disk takes over the shutdown ones within the second.
	signal.Ignore(initsig.FatalByDefault...)
	signal.Ignore(initsig.Shutdown...)
	level := slog.LevelInfo
	if os.Getenv("KEEL_LOG") == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(bootlog.New(os.Stdout).Handler(level))
	done, err := squashfsroot.Mount(log)
	if err != nil {
		fail(log, "squashfs root: "+err.Error())
	}
	if !done {
		fail(log, "squashfs root: this initrd names no partition ("+bundle.SquashfsRootFile+" is missing)")
	}
	err = squashfsroot.ExecInit()
	fail(log, "squashfs root: exec the disk's /init: "+err.Error())
}

// fail says why the boot cannot go on and halts the machine. It never
// returns.
func fail(log *slog.Logger, why string) {
	log.Error("boot failed: " + why)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_HALT); err != nil {
		log.Error("halt", "err", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
