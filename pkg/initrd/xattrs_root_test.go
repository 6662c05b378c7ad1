package initrd

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/keel-os/keel/pkg/xattrs"
	"golang.org/x/sys/unix"
)

// From layers to attributes on files: unpack an image whose ping has
// Debian's capability, extract the archive onto a tmpfs as the kernel
// would (with the system cpio), apply the manifest it holds as PID 1 does,
// and read the capability back.
func TestXattrsFromLayerToTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs and sets security.capability (run the tests as root)")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m"); err != nil {
		// As root the mount must work: skipping would pass a test that
		// checked nothing.
		t.Fatalf("mount a tmpfs on %s as root: %v", root, err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })

	link := xattrHeader("usr/bin/ping4", tar.TypeLink, nil)
	link.Linkname = "usr/bin/ping"
	image := xattrLayer(t, "debian layer 1",
		xattrHeader("usr/bin/", tar.TypeDir, nil),
		xattrHeader("usr/bin/ping", tar.TypeReg, map[string]string{"security.capability": pingCap}),
		link)
	base, err := baseLayer()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	a := NewArchive(&buf, 0)
	if err := Unpack(a, "", []Layer{image, base}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	cpioTool(t, buf.Bytes(), root, "-idm", "--quiet", "--no-absolute-filenames")

	ap, err := xattrs.NewApplier(root)
	if err != nil {
		t.Fatal(err)
	}
	es, err := xattrs.ReadFile(filepath.Join(root, xattrs.Dir, xattrs.FileName("")))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := ap.Apply(e); err != nil {
			t.Error(err)
		}
	}
	// The hard link is the same inode: it has the capability too.
	for _, name := range []string{"usr/bin/ping", "usr/bin/ping4"} {
		v := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(root, name), "security.capability", v)
		if err != nil || string(v[:n]) != pingCap {
			t.Errorf("%s: security.capability %q, %v", name, v[:n], err)
		}
	}
}
