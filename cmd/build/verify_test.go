package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/oci"
)

// flipLastByte damages a cached blob without changing its size.
func flipLastByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A cached layer with a flipped byte fails the build, naming the image and
// the blob, and leaves no output; the build after it fetches the blob again
// and succeeds. A flipped byte in the kernel image is fetched again at once.
func TestBuildCatchesCorruptLayer(t *testing.T) {
	_, host := testImages(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	t.Setenv("KEEL_CACHE", cacheDir)
	dir := t.TempDir()
	yml := filepath.Join(dir, "demo.yml")
	if err := os.WriteFile(yml, []byte(strings.ReplaceAll(testYAML, "{{R}}", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	// No segment cache: a cached segment would skip the layer read.
	opts := buildOptions{output: &outputOptions{noSegmentCache: true}}
	out := initrd.Outputs{Dir: filepath.Join(dir, "out"), Name: "demo"}
	if err := build(context.Background(), []string{yml}, out, opts); err != nil {
		t.Fatal(err)
	}
	layerBlob := func(ref string, i int) (string, string) {
		r, _ := name.ParseReference(host+"/"+ref, name.Insecure)
		img, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		d, _ := ls[i].Digest()
		return filepath.Join(cacheDir, "oci", "blobs", d.Algorithm, d.Hex), d.String()
	}
	if err := os.RemoveAll(out.Dir); err != nil {
		t.Fatal(err)
	}

	bbPath, bbDigest := layerBlob("keel/busybox:test", 1)
	flipLastByte(t, bbPath)
	err := build(context.Background(), []string{yml}, out, opts)
	if !errors.Is(err, oci.ErrCorruptBlob) {
		t.Fatalf("build with a corrupt layer: %v, want ErrCorruptBlob", err)
	}
	for _, want := range []string{host + "/keel/busybox:test", bbDigest, "has digest sha256:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if left, _ := os.ReadDir(out.Dir); len(left) != 0 {
		t.Errorf("failed build left %d files in %s: %v", len(left), out.Dir, left)
	}
	if err := build(context.Background(), []string{yml}, out, opts); err != nil {
		t.Fatalf("build after the corrupt blob was removed: %v", err)
	}

	// keel build itself builds again after removing the damaged blob.
	flipLastByte(t, bbPath)
	var progress strings.Builder
	ropts := opts
	ropts.progress = &progress
	if err := buildRepairing(context.Background(), []string{yml}, out, ropts); err != nil {
		t.Fatalf("repairing build: %v", err)
	}
	if want := "blob " + bbDigest + " was damaged and is removed; building again"; !strings.Contains(progress.String(), want) {
		t.Errorf("progress lacks %q:\n%s", want, progress.String())
	}

	kPath, _ := layerBlob("keel/kernel:test", 0)
	flipLastByte(t, kPath)
	if err := build(context.Background(), []string{yml}, out, opts); err != nil {
		t.Fatalf("build with a corrupt kernel layer: %v", err)
	}
	if b, _ := os.ReadFile(out.Kernel()); string(b) != "bzImage bytes" {
		t.Errorf("kernel = %q", b)
	}
}
