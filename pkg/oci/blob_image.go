package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blobImage is an image whose blobs are files of an OCI image layout
// (DIR/blobs/ALG/HEX), each checked against its digest as it is read.
// go-containerregistry's layout package reads them unchecked, so a flipped
// bit on disk would flow into the initrd.
type blobImage struct {
	root string        // the layout directory
	desc v1.Descriptor // the manifest's
	ref  string        // for errors
	// where says, in errors, what holds the blobs: "the cache DIR".
	where string
	// removeBad deletes a blob found corrupt; only for the cache, never
	// for a layout directory the user owns.
	removeBad bool

	mu       sync.Mutex
	manifest []byte

	// proved holds the blobs this image has read whole and found right.
	// The initrd writer reads each layer twice (a scan, then the copy),
	// and the kernel's layers are read through at resolve before being
	// extracted: the later reads need not hash again.
	provedMu sync.Mutex
	proved   map[v1.Hash]bool
}

// newBlobImage returns the image whose manifest desc names, in the
// layout at root.
func newBlobImage(root string, desc v1.Descriptor, ref, where string, removeBad bool) (v1.Image, error) {
	return partial.CompressedToImage(&blobImage{root: root, desc: desc, ref: ref, where: where, removeBad: removeBad})
}

func (i *blobImage) blobPath(d v1.Descriptor) string {
	return filepath.Join(i.root, "blobs", d.Digest.Algorithm, d.Digest.Hex)
}

// open returns a reader of the blob d that fails at its end if the blob is
// not what d says.
func (i *blobImage) open(d v1.Descriptor) (io.ReadCloser, error) {
	p := i.blobPath(d)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &BlobError{Image: i.ref, Digest: d.Digest, Where: i.where, Problem: "is missing"}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: read blob %s: %w", i.ref, d.Digest, err)
	}
	if i.isProved(d.Digest) {
		return f, nil
	}
	var onError func(*BlobError) error
	if i.removeBad {
		onError = removeCorrupt(p)
	}
	v := newVerifyingReader(f, d, i.ref, i.where, onError)
	v.onOK = func() { i.prove(d.Digest) }
	return v, nil
}

func (i *blobImage) isProved(h v1.Hash) bool {
	i.provedMu.Lock()
	defer i.provedMu.Unlock()
	return i.proved[h]
}

func (i *blobImage) prove(h v1.Hash) {
	i.provedMu.Lock()
	defer i.provedMu.Unlock()
	if i.proved == nil {
		i.proved = map[v1.Hash]bool{}
	}
	i.proved[h] = true
}

// readBlob reads a small blob whole and checks it.
func (i *blobImage) readBlob(d v1.Descriptor) ([]byte, error) {
	rc, err := i.open(d)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (i *blobImage) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }

// RawManifest reads and checks the manifest once; a failure is not kept,
// so that a blob fetched again is read again.
func (i *blobImage) RawManifest() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.manifest != nil {
		return i.manifest, nil
	}
	b, err := i.readBlob(i.desc)
	if err != nil {
		return nil, err
	}
	i.manifest = b
	return b, nil
}

func (i *blobImage) RawConfigFile() ([]byte, error) {
	m, err := partial.Manifest(i)
	if err != nil {
		return nil, err
	}
	return i.readBlob(m.Config)
}

// LayerByDigest returns the layer (or config) blob h of the manifest.
func (i *blobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := partial.Manifest(i)
	if err != nil {
		return nil, err
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Digest == h {
			return &blobLayer{img: i, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("image %s: no blob %s in its manifest", i.ref, h)
}

// blobLayer is one layer of a blobImage.
type blobLayer struct {
	img  *blobImage
	desc v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *blobLayer) Descriptor() (*v1.Descriptor, error) { return &l.desc, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.img.open(l.desc) }
