package main

import (
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/keel-os/keel/pkg/oci"
)

// keel cache export, rm, clean and import, end to end on one cache.
func TestCacheCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	t.Setenv("KEEL_CACHE", dir)
	c, err := oci.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(100, 1)
	if err := c.Put("test/x:1", img); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(t.TempDir(), "x.tar")
	lay := filepath.Join(t.TempDir(), "z")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{oci.RefAnnotation: "5"})); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"cache", "ls", "-l"},
		{"cache", "export", "test/x:1", tar},
		{"cache", "rm", "test/x:1"},
		{"cache", "clean"},
		{"cache", "import", "--tag", "test/y:2", tar},
		{"cache", "import", tar},
		{"cache", "import", "--arch", "arm64", lay},
	} {
		if err := dispatch(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	for _, ref := range []string{"test/x:1", "test/y:2", "z:5"} {
		if _, err := c.Image(ref); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
	for _, args := range [][]string{
		{"cache", "rm", "test/nothere:1"},
		{"cache", "export", "test/nothere:1", tar},
		{"cache", "import", filepath.Join(t.TempDir(), "missing.tar")},
		{"cache", "bogus"},
		{"cache", "import", "--arch", "mips", lay},
		{"cache", "import", lay, tar},
	} {
		if err := dispatch(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
