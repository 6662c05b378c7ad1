package oci

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// --arch arm64 after an amd64 build on the same cache gets the arm64
// image, not the cached amd64 one, and back again.
func TestResolverArchSwitch(t *testing.T) {
	_, host := testRegistry(t)
	amd, _ := random.Image(100, 1)
	arm, _ := random.Image(100, 1)
	amd, arm = withPlatform(t, amd, "amd64"), withPlatform(t, arm, "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(emptyIndex(), "application/vnd.oci.image.index.v1+json"),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref := host + "/multi:2"
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	cache, _ := OpenCache(t.TempDir())
	for _, c := range []struct {
		arch string
		want v1.Image
	}{{"amd64", amd}, {"arm64", arm}, {"amd64", amd}} {
		res := &Resolver{Cache: cache, Platform: v1.Platform{OS: "linux", Architecture: c.arch}}
		got, err := res.Image(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", c.arch, err)
		}
		want, _ := c.want.Digest()
		if d, _ := got.Digest(); d != want {
			t.Errorf("%s: got %s, want %s", c.arch, d, want)
		}
	}
}
