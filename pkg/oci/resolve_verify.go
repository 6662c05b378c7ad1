package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkBlobs makes sure a cached image is whole before a build relies on
// it: its manifest and config, small, are read and checked against their
// digests; its layers, large, must be present with the size the manifest
// gives. A pull cut short, a full disk or a truncated file is caught here;
// a layer with a flipped bit and the right size is caught by the digest
// check of the read that uses it (see blobImage), which costs no extra
// pass over the bytes. A damaged blob is removed, so a pull rewrites it.
func (c *Cache) checkBlobs(ref string, img v1.Image) error {
	if _, err := img.RawManifest(); err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	for _, d := range m.Layers {
		p := c.blobPath(d.Digest)
		st, err := os.Stat(p)
		if err != nil {
			return &BlobError{Image: ref, Digest: d.Digest, Where: "the cache " + c.Dir, Problem: "is missing"}
		}
		if st.Size() != d.Size {
			be := &BlobError{Image: ref, Digest: d.Digest, Where: "the cache " + c.Dir,
				Problem: fmt.Sprintf("has %d bytes, want %d (partial or corrupt)", st.Size(), d.Size)}
			return removeCorrupt(p)(be)
		}
	}
	return nil
}

// cachedImage returns the cached image named ref after checking its blobs;
// a damaged image is pulled again when its registry can be reached.
func (r *Resolver) cachedImage(img v1.Image, ref string, pull func() error) (v1.Image, error) {
	bad := r.Cache.checkBlobs(ref, img)
	if bad == nil {
		return img, nil
	}
	if !errors.Is(bad, ErrCorruptBlob) {
		return nil, bad
	}
	r.logf("cache: %v; pulling it again\n", bad)
	if err := pull(); err != nil {
		return nil, fmt.Errorf("%w, and pulling it again failed: %w\n(run `keel cache rm %s` and build again, or import the image)", bad, err, ref)
	}
	img, err := r.Cache.Image(ref)
	if err != nil {
		return nil, err
	}
	if err := r.Cache.checkBlobs(ref, img); err != nil {
		return nil, fmt.Errorf("%w (run `keel cache rm %s` and build again)", err, ref)
	}
	return img, nil
}

// WholeImage is Image with every layer's digest checked as well, by
// reading it through, and a damaged layer fetched again. Most images need
// not pay for that pass: the initrd writer's own read checks each layer
// and fails on a mismatch. It is for images read by code that drops the
// reader's error at Close, as the kernel image's extraction
// (mutate.Extract) does; there a mismatch would go unseen.
func (r *Resolver) WholeImage(ctx context.Context, ref string) (v1.Image, error) {
	img, err := r.Image(ctx, ref)
	if err != nil {
		return nil, err
	}
	bad := readLayers(img)
	if bad == nil {
		return img, nil
	}
	if !errors.Is(bad, ErrCorruptBlob) {
		return nil, bad
	}
	// The reader removed the damaged blob: pulling rewrites it.
	r.logf("cache: %v; pulling it again\n", bad)
	if err := r.Refresh(ctx, ref); err != nil {
		return nil, fmt.Errorf("%w, and pulling it again failed: %w", bad, err)
	}
	if img, err = r.Cache.Image(ref); err != nil {
		return nil, err
	}
	if err := readLayers(img); err != nil {
		return nil, err
	}
	return img, nil
}

// readLayers reads every layer blob of img to its end, so that the
// verifying reader under it checks the digest.
func readLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
