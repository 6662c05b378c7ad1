package oci

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// Bad registries and images: each error names the reference and says what
// went wrong.
func TestResolverBadInput(t *testing.T) {
	srv, host := testRegistry(t)
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Cache: c}
	_, err = r.Image(context.Background(), host+"/nothere:1")
	if err == nil || !strings.Contains(err.Error(), "pull "+host+"/nothere:1: image not found in registry "+host) {
		t.Errorf("missing image: %v", err)
	}
	srv.Close()
	_, err = r.Image(context.Background(), host+"/gone:1")
	if err == nil || !strings.Contains(err.Error(), "pull "+host+"/gone:1") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable registry: %v", err)
	}
	t.Log(err)
}

// A manifest that is not JSON is refused with an error naming the image;
// nothing is cached.
func TestResolverMalformedManifest(t *testing.T) {
	srv, host := testRegistry(t)
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v2/bad/manifests/1", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The registry must have taken the manifest, or the pull below fails
	// for another reason (not found) and the test proves nothing.
	if resp.StatusCode/100 != 2 {
		t.Fatalf("put the bad manifest: %s", resp.Status)
	}
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Cache: c}
	_, err = r.Image(context.Background(), host+"/bad:1")
	if err == nil || !strings.Contains(err.Error(), "pull "+host+"/bad:1") {
		t.Fatalf("malformed manifest: %v", err)
	}
	t.Log(err)
	// A cache that cannot be read lists nothing too: the error counts.
	l, err := c.List()
	if err != nil {
		t.Fatalf("list the cache: %v", err)
	}
	if len(l) != 0 {
		t.Errorf("cached after a bad manifest: %v", l)
	}
}
