package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestVerifyingReader(t *testing.T) {
	blob := []byte("the content of a blob")
	h, _, _ := v1.SHA256(bytes.NewReader(blob))
	desc := v1.Descriptor{Digest: h, Size: int64(len(blob))}
	flipped := bytes.Clone(blob)
	flipped[3] ^= 1
	for _, tc := range []struct {
		name, content, want string
	}{
		{"good", string(blob), ""},
		{"flipped", string(flipped), "has digest sha256:"},
		{"short", string(blob[:5]), "has 5 bytes, want 21 (partial or corrupt)"},
		{"long", string(blob) + "tail", "has more than the 21 bytes it should (corrupt)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newVerifyingReader(io.NopCloser(strings.NewReader(tc.content)), desc, "x/y:1", "the cache /c", nil)
			_, err := io.ReadAll(r)
			if cerr := r.Close(); cerr != nil && err == nil {
				t.Fatalf("Close failed after a clean read: %v", cerr)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrCorruptBlob) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "image x/y:1: blob "+h.String()+" in the cache /c ") {
				t.Fatalf("error = %v, want ErrCorruptBlob with %q", err, tc.want)
			}
		})
	}
	// A reader left unread is checked at Close.
	r := newVerifyingReader(io.NopCloser(bytes.NewReader(flipped)), desc, "x/y:1", "the cache /c", nil)
	if _, err := r.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("Close of a half-read corrupt blob = %v", err)
	}
}

// cachedBlob returns the path of blob d in the cache.
func cachedBlob(c *Cache, d v1.Hash) string {
	return filepath.Join(c.Dir, "oci", "blobs", d.Algorithm, d.Hex)
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// A layer with one byte flipped, same size, passes the resolve's cheap
// checks; the read that uses it fails naming the image and the blob, even
// when the reader stops at the tar's end marker, and removes the blob, so
// the next resolve fetches it again.
func TestFlippedLayerByteFailsTheReadThenIsFetchedAgain(t *testing.T) {
	_, host := testRegistry(t)
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/test/flip:1"
	push(t, ref, img)
	c, _ := OpenCache(t.TempDir())
	r := &Resolver{Cache: c}
	if _, err := r.Image(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	// Near the end: the gzip trailer, which a tar reader never reaches.
	flipByte(t, cachedBlob(c, d), size-3)

	got, err := r.Image(context.Background(), ref)
	if err != nil {
		t.Fatalf("resolve must not hash layers: %v", err)
	}
	gl, _ := got.Layers()
	rc, err := gl[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	for {
		if _, err := tr.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("tar: %v", err)
			}
			break
		}
	}
	err = rc.Close()
	if !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("close after the tar end = %v, want ErrCorruptBlob", err)
	}
	for _, want := range []string{"image " + ref, "blob " + d.String(), "has digest sha256:", "removed it from the cache"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(cachedBlob(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt blob left in the cache: %v", err)
	}

	var progress strings.Builder
	r.Progress = &progress
	got, err = r.Image(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := readLayers(got); err != nil {
		t.Fatalf("after refetch: %v", err)
	}
	if !strings.Contains(progress.String(), "is missing; pulling it again") {
		t.Errorf("progress = %q", progress.String())
	}
}

// A flipped byte in the config or the manifest is caught when the image is
// resolved (they are small and read whole) and fetched again.
func TestCorruptConfigOrManifestIsFetchedAgain(t *testing.T) {
	for _, which := range []string{"config", "manifest"} {
		t.Run(which, func(t *testing.T) {
			_, host := testRegistry(t)
			img, _ := random.Image(512, 1)
			ref := host + "/test/" + which + ":1"
			push(t, ref, img)
			c, _ := OpenCache(t.TempDir())
			var progress strings.Builder
			r := &Resolver{Cache: c, Progress: &progress}
			if _, err := r.Image(context.Background(), ref); err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			if which == "config" {
				d, _ = img.ConfigName()
			}
			flipByte(t, cachedBlob(c, d), 10)
			progress.Reset()
			got, err := r.Image(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(progress.String(), "blob "+d.String()) || !strings.Contains(progress.String(), "pulling it again") {
				t.Errorf("progress = %q", progress.String())
			}
			if _, err := got.ConfigFile(); err != nil {
				t.Errorf("after refetch: %v", err)
			}
		})
	}
}

// WholeImage reads the layers through: a flipped layer byte is fetched
// again before anything uses it; with the registry gone it is an error.
func TestWholeImageRefetchesFlippedLayer(t *testing.T) {
	srv, host := testRegistry(t)
	img, _ := random.Image(2048, 2)
	ref := host + "/test/whole:1"
	push(t, ref, img)
	c, _ := OpenCache(t.TempDir())
	r := &Resolver{Cache: c}
	if _, err := r.WholeImage(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	flipByte(t, cachedBlob(c, d), 100)
	got, err := r.WholeImage(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(got); err != nil {
		t.Fatalf("after refetch: %v", err)
	}

	srv.Close()
	flipByte(t, cachedBlob(c, d), 100)
	_, err = r.WholeImage(context.Background(), ref)
	if !errors.Is(err, ErrCorruptBlob) || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "pulling it again failed") {
		t.Fatalf("error = %v", err)
	}
	t.Log(err)
}
