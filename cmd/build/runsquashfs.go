package main

import (
	"errors"
	"io/fs"
	"os"

	"github.com/keel-os/keel/pkg/qemu"
)

// The suffixes of a kernel+squashfs build's own files, after NAME.
const (
	squashfsInitrdSuffix = "-squashfs-initrd.img"
	squashfsDiskSuffix   = "-squashfs.img"
)

// squashfsBoot points m at NAME's kernel+squashfs files when NAME has no
// initrd of its own but a small one and a squashfs disk (keel build
// -format kernel+squashfs): it boots the small initrd and attaches the
// disk first, before any -disk. It reports whether it did.
//
// Named by one of its own files (prefer), NAME boots as kernel+squashfs
// even when it has an initrd too.
func squashfsBoot(initrd *string, disks *[]qemu.Disk, name string, prefer bool) bool {
	if _, err := os.Stat(*initrd); !prefer && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	small, disk := name+squashfsInitrdSuffix, name+squashfsDiskSuffix
	for _, p := range []string{small, disk} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	*initrd = small
	*disks = append([]qemu.Disk{{Path: disk, Format: qemu.Raw}}, *disks...)
	return true
}
