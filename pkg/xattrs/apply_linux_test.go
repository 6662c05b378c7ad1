package xattrs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tmpfsRoot mounts a small tmpfs, the filesystem of the booted initrd. It
// skips the test when not root, and fails it when root cannot mount.
func tmpfsRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs and sets security.* and trusted.* attributes (run the tests as root)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		// As root the mount must work: skipping would pass a test that
		// checked nothing.
		t.Fatalf("mount a tmpfs on %s as root: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func getxattr(t *testing.T, p, name string) (string, error) {
	t.Helper()
	buf := make([]byte, 1024)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func TestApplyOnTmpfs(t *testing.T) {
	root := tmpfsRoot(t)
	for _, d := range []string{"usr/bin", "mnt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/ping"), []byte("ping"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"bin": "usr/bin", "usr/bin/ping6": "ping", "escape": "/"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Another filesystem over part of the tree, as /var is at boot.
	if err := unix.Mount("tmpfs", filepath.Join(root, "mnt"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(root, "mnt"), unix.MNT_DETACH)
	os.WriteFile(filepath.Join(root, "mnt/x"), nil, 0o644)

	m, err := Encode([]Entry{
		{Path: "usr/bin/ping", Name: "security.capability", Value: []byte(pingCap)},
		{Path: "usr/bin", Name: "trusted.keel", Value: []byte("dir")},
		{Path: "usr/bin/ping6", Name: "security.keel", Value: []byte("the link itself")},
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := NewApplier(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := ap.Apply(e); err != nil {
			t.Errorf("apply: %v", err)
		}
	}
	for _, c := range []struct{ path, name, want string }{
		{"usr/bin/ping", "security.capability", pingCap},
		{"usr/bin", "trusted.keel", "dir"},
		{"usr/bin/ping6", "security.keel", "the link itself"},
	} {
		if got, err := getxattr(t, filepath.Join(root, c.path), c.name); err != nil || got != c.want {
			t.Errorf("%s %s: %q, %v; want %q", c.path, c.name, got, err, c.want)
		}
	}
	// Setting the link's attribute did not touch its target.
	if _, err := getxattr(t, filepath.Join(root, "usr/bin/ping"), "security.keel"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("ping got the symlink's attribute: %v", err)
	}

	for _, c := range []struct {
		e    Entry
		want string
	}{
		{Entry{Path: "bin/ping", Name: "security.keel"}, "parent bin is a symlink"},
		{Entry{Path: "escape/etc/passwd", Name: "security.keel"}, "parent escape is a symlink"},
		{Entry{Path: "mnt/x", Name: "security.keel"}, "parent mnt is another filesystem"},
		{Entry{Path: "mnt", Name: "security.keel"}, "on another filesystem"},
		{Entry{Path: "usr/bin/ping/x", Name: "security.keel"}, "parent usr/bin/ping is not a directory"},
		{Entry{Path: "usr/bin/gone", Name: "security.keel"}, "usr/bin/gone: security.keel: no such file"},
		{Entry{Path: "../x", Name: "security.keel"}, "leaves the root"},
		{Entry{Path: "usr/bin/ping", Name: "nonsense"}, "not namespace.name"},
	} {
		if err := ap.Apply(c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Apply(%q %q): %v, want an error with %q", c.e.Path, c.e.Name, err, c.want)
		}
	}
	if _, err := getxattr(t, "/etc/passwd", "security.keel"); err == nil {
		t.Errorf("an attribute was set outside the root")
	}
}
