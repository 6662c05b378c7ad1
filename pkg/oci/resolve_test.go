package oci

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry serves a registry on 127.0.0.1 and returns its host:port.
func testRegistry(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func withPlatform(t *testing.T, img v1.Image, arch string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestResolverPullsOnceThenWorksOffline(t *testing.T) {
	srv, host := testRegistry(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/test/app:1"
	push(t, ref, img)

	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	r := &Resolver{Cache: cache, Progress: &progress}
	got, err := r.Image(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("digest = %s, want %s", d, want)
	}
	if progress.String() != "pull "+ref+"\n" {
		t.Errorf("progress = %q", progress.String())
	}

	srv.Close() // from now on only the cache can answer
	progress.Reset()
	got, err = r.Image(context.Background(), ref)
	if err != nil {
		t.Fatalf("second resolve, offline: %v", err)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	if _, err := layers[1].Compressed(); err != nil {
		t.Errorf("layer blob not cached: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("pulled again: %q", progress.String())
	}
	if _, err := r.Image(context.Background(), host+"/test/other:1"); err == nil {
		t.Error("missing image resolved")
	}
}

func TestResolverPicksPlatformFromIndex(t *testing.T) {
	_, host := testRegistry(t)
	amd, _ := random.Image(100, 1)
	arm, _ := random.Image(100, 1)
	amd, arm = withPlatform(t, amd, "amd64"), withPlatform(t, arm, "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(emptyIndex(), "application/vnd.oci.image.index.v1+json"),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	r, _ := name.ParseReference(host+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()

	cache, _ := OpenCache(t.TempDir())
	res := &Resolver{Cache: cache}
	for _, ref := range []string{host + "/multi:1", host + "/multi@" + idxDigest.String()} {
		got, err := res.Image(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		want, _ := amd.Digest()
		if d, _ := got.Digest(); d != want {
			t.Errorf("%s: got %s, want the amd64 image %s", ref, d, want)
		}
	}
	// A digest reference to the index is found in the cache by its name.
	if _, err := cache.Image(host + "/multi@" + idxDigest.String()); err != nil {
		t.Errorf("index digest not cached: %v", err)
	}
}

func TestResolverRefusesOtherPlatform(t *testing.T) {
	_, host := testRegistry(t)
	img, _ := random.Image(100, 1)
	push(t, host+"/arm:1", withPlatform(t, img, "arm64"))
	cache, _ := OpenCache(t.TempDir())
	_, err := (&Resolver{Cache: cache}).Image(context.Background(), host+"/arm:1")
	want := "pull " + host + "/arm:1: image is for linux/arm64, want linux/amd64"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	if _, err := cache.Image(host + "/arm:1"); !errors.Is(err, ErrNotCached) {
		t.Errorf("refused image was cached: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for reg, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:80": true, "localhost": true,
		"index.docker.io": false, "10.0.0.1:5000": false, "ghcr.io": false,
	} {
		if got := isLoopback(reg); got != want {
			t.Errorf("isLoopback(%q) = %v", reg, got)
		}
	}
}

func emptyIndex() v1.ImageIndex { return empty.Index }
