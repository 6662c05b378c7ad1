package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/keel-os/keel/pkg/qemu"
)

func TestRunPicksKernelSquashfs(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "x")
	touch := func(suffix string) {
		if err := os.WriteFile(name+suffix, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch("-squashfs-initrd.img")
	touch("-squashfs.img")
	initrd, disks := name+"-initrd.img", []qemu.Disk{{Path: "extra.img"}}
	if !squashfsBoot(&initrd, &disks, name, false) {
		t.Fatal("kernel+squashfs files not picked")
	}
	if initrd != name+"-squashfs-initrd.img" || !reflect.DeepEqual(disks, []qemu.Disk{{Path: name + "-squashfs.img", Format: qemu.Raw}, {Path: "extra.img"}}) {
		t.Errorf("initrd %s, disks %v", initrd, disks)
	}
	// With an initrd of its own, NAME boots as kernel+initrd, as before.
	touch("-initrd.img")
	initrd, disks = name+"-initrd.img", nil
	if squashfsBoot(&initrd, &disks, name, false) || initrd != name+"-initrd.img" || len(disks) != 0 {
		t.Errorf("kernel+initrd build booted as kernel+squashfs: %s %v", initrd, disks)
	}
	// Unless one of the kernel+squashfs files was named.
	if !squashfsBoot(&initrd, &disks, name, true) || initrd != name+"-squashfs-initrd.img" {
		t.Errorf("kernel+squashfs not preferred when named: %s %v", initrd, disks)
	}
}
