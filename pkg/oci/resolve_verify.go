package oci

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkBlobs makes sure every blob of a cached image is present with the
// size its manifest gives: a pull cut short, a full disk or a truncated
// file is caught here rather than deep in the initrd writer.
func (c *Cache) checkBlobs(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	descs := append([]v1.Descriptor{m.Config}, m.Layers...)
	for _, d := range descs {
		p := filepath.Join(c.Dir, "oci", "blobs", d.Digest.Algorithm, d.Digest.Hex)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("blob %s is missing from the cache", d.Digest)
		}
		if st.Size() != d.Size {
			return fmt.Errorf("blob %s in the cache has %d bytes, want %d (partial or corrupt)", d.Digest, st.Size(), d.Size)
		}
	}
	return nil
}

// cachedImage returns the cached image named ref after checking its blobs;
// a damaged image is pulled again when its registry can be reached.
func (r *Resolver) cachedImage(img v1.Image, ref string, pull func() error) (v1.Image, error) {
	bad := r.Cache.checkBlobs(img)
	if bad == nil {
		return img, nil
	}
	r.logf("cache: %s: %v; pulling it again\n", ref, bad)
	if err := pull(); err != nil {
		return nil, fmt.Errorf("image %s: %v, and pulling it again failed: %w\n(run `keel cache rm %s` and build again, or import the image)", ref, bad, err, ref)
	}
	img, err := r.Cache.Image(ref)
	if err != nil {
		return nil, err
	}
	if err := r.Cache.checkBlobs(img); err != nil {
		return nil, fmt.Errorf("image %s: %w (run `keel cache rm %s` and build again)", ref, err, ref)
	}
	return img, nil
}
