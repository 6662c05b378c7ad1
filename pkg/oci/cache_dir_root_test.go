package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A cache directory owned by another user is refused, even when nobody
// else could write to it: its owner could swap the images keel boots.
// As root, the test makes the directory belong to nobody (65534).
func TestOpenCacheRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a directory owned by another user (run the tests as root)")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatalf("chown %s to 65534 as root: %v", dir, err)
	}
	_, err := OpenCache(dir)
	if err == nil {
		t.Fatal("OpenCache accepted a cache directory owned by uid 65534")
	}
	if want := fmt.Sprintf("image cache %s: owned by uid 65534, not by you (uid %d)", dir, os.Geteuid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v\nwant it to contain %q", err, want)
	}
}
