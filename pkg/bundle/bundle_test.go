package bundle

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The YAML order of onboot bundles is their sorted directory order, so the
// padding must keep position 10 after position 9 and 100 after 99.
func TestListIsYAMLOrder(t *testing.T) {
	root := t.TempDir()
	var want []string
	for i := range 120 {
		name := DirName(Onboot, i, "b")
		want = append(want, name)
	}
	// Made in reverse, so that a listing in creation order would fail.
	for _, name := range slices.Backward(want) {
		if err := os.MkdirAll(filepath.Join(root, OnbootDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A stray file is not a bundle.
	if err := os.WriteFile(filepath.Join(root, OnbootDir, "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := List(root, Onboot)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got {
		names = append(names, b.Name)
		if b.Kind != Onboot || b.Path != filepath.Join(root, OnbootDir, b.Name) {
			t.Errorf("bundle %+v: wrong kind or path", b)
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("List order:\n got %v\nwant %v", names, want)
	}
}

func TestDirName(t *testing.T) {
	for _, c := range []struct {
		kind  Kind
		index int
		name  string
		want  string
	}{
		{Onboot, 0, "dhcp", "000-dhcp"},
		{Onboot, 9, "x", "009-x"},
		{Onboot, 10, "x", "010-x"},
		{Onshutdown, 999, "x", "999-x"},
		{Service, 3, "web", "web"},
	} {
		if got := DirName(c.kind, c.index, c.name); got != c.want {
			t.Errorf("DirName(%s, %d, %q) = %q, want %q", c.kind, c.index, c.name, got, c.want)
		}
	}
}

func TestListMissingDirectory(t *testing.T) {
	got, err := List(t.TempDir(), Service)
	if err != nil || got != nil {
		t.Fatalf("List of an image with no services = %v, %v; want nothing and no error", got, err)
	}
}

func TestListUnreadable(t *testing.T) {
	root := t.TempDir()
	// The kind's directory is a file: an error, not an empty list.
	if err := os.MkdirAll(filepath.Join(root, Root), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, OnbootDir), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := List(root, Onboot); err == nil {
		t.Fatal("List of a file in place of the onboot directory: no error")
	}
}

func TestReadRuntimeMissingIsEmpty(t *testing.T) {
	rt, err := ReadRuntime(filepath.Join(t.TempDir(), RuntimeFile))
	if err != nil || rt == nil || rt.Restart != "" {
		t.Fatalf("ReadRuntime of a missing file = %+v, %v; want an empty Runtime", rt, err)
	}
}

func TestRuntimeRoundTrip(t *testing.T) {
	in := &Runtime{Mkdir: []string{"/var/lib/x"}, Restart: RestartAlways, RootfsLower: ImagePath("ab"),
		Interfaces: []Interface{{Name: "eth1", Peer: "veth0"}}, BindNS: Namespaces{Net: "/run/netns/x"}}
	b, err := MarshalRuntime(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), RuntimeFile)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ReadRuntime(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Restart != in.Restart || out.RootfsLower != in.RootfsLower || out.BindNS != in.BindNS ||
		len(out.Interfaces) != 1 || out.Interfaces[0] != in.Interfaces[0] || !slices.Equal(out.Mkdir, in.Mkdir) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRuntime(path); err == nil {
		t.Fatal("ReadRuntime of broken JSON: no error")
	}
}
