package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tar-kernel-initrd output is unpacked into the state directory for
// QEMU, which takes files; its cmdline is read.
func TestReadKernelInitrdTar(t *testing.T) {
	dir := t.TempDir()
	tarFile := filepath.Join(dir, "x-initrd.tar")
	os.WriteFile(tarFile, tarBytes(t,
		file{name: "kernel", data: "bzImage bytes"},
		file{name: "initrd.img", data: "initrd bytes"},
		file{name: "cmdline", data: "console=ttyS0\n"},
	), 0o644)
	state := t.TempDir()
	cmdline, err := readKernelInitrdTar(tarFile, state)
	if err != nil || cmdline != "console=ttyS0" {
		t.Fatalf("cmdline %q, %v", cmdline, err)
	}
	for name, want := range map[string]string{"kernel": "bzImage bytes", "initrd.img": "initrd bytes"} {
		if b, err := os.ReadFile(filepath.Join(state, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	noInitrd := filepath.Join(dir, "bad.tar")
	os.WriteFile(noInitrd, tarBytes(t, file{name: "kernel", data: "k"}, file{name: "cmdline", data: "c"}), 0o644)
	if _, err := readKernelInitrdTar(noInitrd, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a tar-kernel-initrd output") {
		t.Errorf("tar with no initrd.img: %v", err)
	}
}
