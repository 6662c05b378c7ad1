package oci

import (
	"errors"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// rm drops the name only; clean then frees the blobs no other image uses;
// export writes a docker archive that import reads back, same digest.
func TestCacheRemoveCleanExportImport(t *testing.T) {
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := random.Image(1000, 2)
	b, _ := random.Image(500, 1)
	if err := c.Put("test/a:1", a); err != nil {
		t.Fatal(err)
	}
	if err := c.Put("test/b:1", b); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "a.tar")
	if err := c.Export("test/a:1", out, DockerArchive); err != nil {
		t.Fatal(err)
	}

	if err := c.Remove("test/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("test/a:1"); !errors.Is(err, ErrNotCached) {
		t.Fatalf("second rm: %v, want ErrNotCached", err)
	}
	if _, err := c.Image("test/a:1"); !errors.Is(err, ErrNotCached) {
		t.Fatalf("after rm: %v", err)
	}
	n, freed, err := c.Clean(0)
	if err != nil {
		t.Fatal(err)
	}
	// a's manifest, config and two layers of 1000 bytes.
	if n != 4 || freed < 2000 {
		t.Errorf("clean removed %d files, %d bytes; want 4 files, >= 2000 bytes", n, freed)
	}
	if img, err := c.Image("test/b:1"); err != nil {
		t.Fatal(err)
	} else if err := validateImage(img); err != nil {
		t.Fatalf("b damaged by clean: %v", err)
	}
	if n, _, _ := c.Clean(0); n != 0 {
		t.Errorf("second clean removed %d files", n)
	}

	names, err := c.Import(out, "", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "index.docker.io/test/a:1" && names[0] != "test/a:1" {
		t.Errorf("imported %q", names)
	}
	got, err := c.Image("test/a:1")
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := got.Digest()
	dw, _ := a.Digest()
	if dg != dw {
		t.Errorf("imported digest %s, want %s", dg, dw)
	}
	if err := validateImage(got); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Import(out, "other/name:2", v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Image("other/name:2"); err != nil {
		t.Fatal(err)
	}
}
