package oci

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// recordingTransport answers every request with an error and remembers
// the hosts asked, so that a test sees whether a registry was contacted.
type recordingTransport struct {
	mu    sync.Mutex
	hosts []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.hosts = append(rt.hosts, req.URL.Host)
	rt.mu.Unlock()
	return nil, errors.New("no network in this test")
}

func (rt *recordingTransport) asked() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.hosts...)
}

// offlineResolver is a Resolver over cache whose requests go to rt.
func offlineResolver(cache *Cache, arch string, rt *recordingTransport) *Resolver {
	r := &Resolver{Cache: cache, Platform: v1.Platform{OS: "linux", Architecture: arch}}
	r.transportOnce.Do(func() { r.transport = rt })
	return r
}

// keel's base images are never fetched from Docker Hub, whose keel/ is
// someone else's: a missing one is an error that says how to make it, and
// names the architecture when the cache has the image for another one.
// Cached ones keep working, --pull keeps them, and every other name is
// still pulled.
func TestResolverNeverPullsBaseImagesFromDockerHub(t *testing.T) {
	ctx := context.Background()
	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rt := &recordingTransport{}
	res := offlineResolver(cache, "amd64", rt)

	for _, ref := range []string{"keel/busybox:1.35", "docker.io/keel/init:0.1.0", "index.docker.io/keel/boot:1", "keel/kernel@sha256:" + strings.Repeat("a", 64)} {
		_, err := res.Image(ctx, ref)
		if !errors.Is(err, ErrLocalImage) || !strings.Contains(err.Error(), "run `make images`") {
			t.Errorf("%s: err = %v, want ErrLocalImage with how to make it", ref, err)
		}
	}
	if h := rt.asked(); len(h) > 0 {
		t.Fatalf("a registry was asked for keel's base images: %q", h)
	}

	// In the cache for amd64: found there, and kept by --pull; asked for
	// arm64, the error names both architectures.
	img, _ := random.Image(100, 1)
	img = withPlatform(t, img, "amd64")
	if err := cache.Put("keel/kernel:6.1.0-56", img); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res.Progress = &progress
	if _, err := res.Image(ctx, "keel/kernel:6.1.0-56"); err != nil {
		t.Errorf("cached base image: %v", err)
	}
	if err := res.Refresh(ctx, "keel/kernel:6.1.0-56"); err != nil || !strings.Contains(progress.String(), "kept from the cache") {
		t.Errorf("--pull of a cached base image: %v; progress %q", err, progress.String())
	}
	arm := offlineResolver(cache, "arm64", rt)
	_, err = arm.Image(ctx, "keel/kernel:6.1.0-56")
	if !errors.Is(err, ErrLocalImage) || !strings.Contains(err.Error(), "no keel/kernel:6.1.0-56 for linux/arm64: the cache ") ||
		!strings.Contains(err.Error(), "has it for linux/amd64 only") {
		t.Errorf("base image for another architecture: %v", err)
	}
	if err := arm.Refresh(ctx, "keel/kernel:6.1.0-56"); !errors.Is(err, ErrLocalImage) {
		t.Errorf("--pull of a base image cached for another architecture: %v", err)
	}
	if h := rt.asked(); len(h) > 0 {
		t.Fatalf("a registry was asked for keel's base images: %q", h)
	}

	// Other names, Docker Hub's included, and keel/ on another registry
	// are pulled as ever.
	for _, ref := range []string{"alpine:3.19", "keelx/busybox:1", "ghcr.io/keel/busybox:1", "127.0.0.1:1/keel/busybox:1"} {
		before := len(rt.asked())
		if _, err := res.Image(ctx, ref); errors.Is(err, ErrLocalImage) || len(rt.asked()) == before {
			t.Errorf("%s: not pulled (err %v)", ref, err)
		}
	}
}
