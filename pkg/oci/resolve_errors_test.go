package oci

import (
	"context"
	"strings"
	"testing"
)

// Bad registries and images: each error names the reference and says what
// went wrong.
func TestResolverBadInput(t *testing.T) {
	srv, host := testRegistry(t)
	c, _ := OpenCache(t.TempDir())
	r := &Resolver{Cache: c}
	_, err := r.Image(context.Background(), host+"/nothere:1")
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
