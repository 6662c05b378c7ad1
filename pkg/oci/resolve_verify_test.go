package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// A truncated blob in the cache is noticed and pulled again; with the
// registry gone the error names the image, the blob and the fix.
func TestResolverRefetchesTruncatedBlob(t *testing.T) {
	srv, host := testRegistry(t)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/test/trunc:1"
	push(t, ref, img)
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Cache: c}
	if _, err := r.Image(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	blob := filepath.Join(c.Dir, "oci", "blobs", d.Algorithm, d.Hex)
	if err := os.Truncate(blob, 100); err != nil {
		t.Fatal(err)
	}
	got, err := r.Image(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(got); err != nil {
		t.Fatalf("after refetch: %v", err)
	}

	srv.Close()
	if err := os.Truncate(blob, 100); err != nil {
		t.Fatal(err)
	}
	_, err = r.Image(context.Background(), ref)
	if err == nil {
		t.Fatal("truncated blob accepted with the registry gone")
	}
	for _, want := range []string{ref, d.String(), "has 100 bytes, want ", "keel cache rm " + ref} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Log(err)
}
