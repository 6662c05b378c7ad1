package main

import (
	"errors"
	"io/fs"
	"os"

	"github.com/keel-os/keel/pkg/qemu"
)

// squashfsBoot points m at NAME's kernel+squashfs files when NAME has no
// initrd of its own but a small one and a squashfs disk (keel build
// -format kernel+squashfs): it boots the small initrd and attaches the
// disk first, before any -disk. It reports whether it did.
func squashfsBoot(initrd *string, disks *[]qemu.Disk, name string) bool {
	if _, err := os.Stat(*initrd); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	small, disk := name+"-squashfs-initrd.img", name+"-squashfs.img"
	for _, p := range []string{small, disk} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	*initrd = small
	*disks = append([]qemu.Disk{{Path: disk, Format: qemu.Raw}}, *disks...)
	return true
}
