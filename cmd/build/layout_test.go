package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/oci"
)

// keel build --layout DIR builds from a layout with no registry at all;
// the lock records the digests, and the next build needs only the cache.
func TestBuildFromLayout(t *testing.T) {
	srv, host := testImages(t)
	dir := t.TempDir()
	lay := filepath.Join(dir, "images")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, ref := range []string{"keel/kernel:test", "keel/init:test", "keel/busybox:test"} {
		r, _ := name.ParseReference(host+"/"+ref, name.Insecure)
		img, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{oci.RefAnnotation: "example.org/" + ref})); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests["example.org/"+ref] = d.String()
	}
	srv.Close()

	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	yml := filepath.Join(dir, "demo.yml")
	if err := os.WriteFile(yml, []byte(strings.ReplaceAll(testYAML, "{{R}}", "example.org")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := initrd.Outputs{Dir: filepath.Join(dir, "out"), Name: "demo"}
	var progress strings.Builder
	if err := build(context.Background(), []string{yml}, out, buildOptions{progress: &progress, layouts: []string{lay}}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(progress.String(), "copy example.org/"); n != 3 {
		t.Errorf("%d copies from the layout, want 3:\n%s", n, progress.String())
	}
	l, err := oci.ReadLock(filepath.Join(out.Dir, "demo.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	for ref, d := range digests {
		if l.Images[ref] != d {
			t.Errorf("lock: %s = %q, want %s", ref, l.Images[ref], d)
		}
	}
	// Without the layout: the cache has everything.
	if err := build(context.Background(), []string{yml}, out, buildOptions{}); err != nil {
		t.Fatalf("second build, cache only: %v", err)
	}

	if err := dispatch([]string{"build", "--dry-run", "--layout", filepath.Join(dir, "nope"), yml}); err == nil ||
		!strings.Contains(err.Error(), "--layout: layout "+filepath.Join(dir, "nope")+": ") {
		t.Errorf("missing layout: %v", err)
	}
}
