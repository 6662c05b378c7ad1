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
	"github.com/keel-os/keel/pkg/testenv"
)

// TestSquashfsIsReproducible writes the same contents twice and wants the
// same bytes, stamped with the build's mtime.
func TestSquashfsIsReproducible(t *testing.T) {
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

// TestSquashfsContents reads an image back with unsquashfs: the tree,
// owners, modes, symlinks, the device node, hard links and file data are
// kept.
func TestSquashfsContents(t *testing.T) {
	testenv.Tool(t, "unsquashfs", "squashfs-tools")
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
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	list := strings.Join(lines, "\n")
	for _, want := range []string{
		"-rw-r----- 1000/100 1 2023-11-14 22:13 squashfs-root/etc/owned",
		"lrwxrwxrwx 0/0 5 2023-11-14 22:13 squashfs-root/etc/link -> owned",
		"crw------- 0/0 5, 1 2023-11-14 22:13 squashfs-root/dev/console",
		"squashfs-root/containers/onboot/000-hello/config.json",
		"-rw-r--r-- 0/0 6 2023-11-14 22:13 squashfs-root/init",
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
	a, _ := os.Stat(filepath.Join(dest, "init"))
	b, _ := os.Stat(filepath.Join(dest, "sbin/init"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("sbin/init is not a hard link of init")
	}
}
