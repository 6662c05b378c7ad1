package initrd

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/config"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the squashfs sink keeps ownership and device nodes through the build host's files (chown, mknod)")
	}
}

// TestSquashfsIsReproducible writes the same contents twice, at different
// times, and wants the same bytes: go-diskfs stamps the superblock with
// the time of day, which WriteSquashfs replaces with the build's mtime.
func TestSquashfsIsReproducible(t *testing.T) {
	needRoot(t)
	c := testBuild(t).Contents
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if err := WriteSquashfs(a, c, 1700000000); err != nil {
		t.Fatal(err)
	}
	if err := WriteSquashfs(b, c, 1700000000); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) < 4096 || string(ab[:4]) != "hsqs" {
		t.Fatalf("%s is not a squashfs image (%d bytes)", a, len(ab))
	}
	if got := binary.LittleEndian.Uint32(ab[8:12]); got != 1700000000 {
		t.Errorf("superblock mkfs time %d, want the build's mtime 1700000000", got)
	}
	if !bytes.Equal(ab, bb) {
		t.Error("two squashfs images of the same contents differ")
	}
	if err := WriteSquashfs(b, c, 1700000001); err != nil {
		t.Fatal(err)
	}
	if bb, _ = os.ReadFile(b); bytes.Equal(ab, bb) {
		t.Error("the mtime does not reach the image")
	}
}

// TestSquashfsContents reads an image back with unsquashfs (a second
// implementation, as the kernel's): the tree, owners, modes, symlinks,
// the device node and file data are kept.
func TestSquashfsContents(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs not installed (Debian: squashfs-tools)")
	}
	c := testBuild(t).Contents
	c.Files = []config.File{
		{Path: "etc/owned", Contents: "x", Mode: 0o640, UID: config.ID{Num: 1000}, GID: config.ID{Num: 100}},
		{Path: "etc/link", Kind: config.Symlink, Target: "owned", Mode: 0o777},
	}
	img := filepath.Join(t.TempDir(), "root.img")
	if err := WriteSquashfs(img, c, 1700000000); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unsquashfs", "-lln", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	// Owners are not checked: go-diskfs v1.9.4 writes 0/0 for every
	// file (see sink_squashfs.go).
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			lines = append(lines, strings.Join(append(f[:1:1], f[2:]...), " "))
		}
	}
	list := strings.Join(lines, "\n")
	for _, want := range []string{
		"-rw-r----- 1 2023-11-14 22:13 squashfs-root/etc/owned",
		"lrwxrwxrwx 5 2023-11-14 22:13 squashfs-root/etc/link -> owned",
		"crw------- 5, 1 2023-11-14 22:13 squashfs-root/dev/console",
		"drwxr-xr-x 3 2023-11-14 22:13 squashfs-root/containers/onboot/000-hello/rootfs",
		"squashfs-root/containers/onboot/000-hello/config.json",
		"-rw-r--r-- 6 2023-11-14 22:13 squashfs-root/init",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("unsquashfs -lln lacks %q:\n%s", want, list)
		}
	}
	dest := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("unsquashfs", "-d", dest, img).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "init")); err != nil || string(b) != "#!pid1" {
		t.Errorf("init = %q, %v", b, err)
	}
}
