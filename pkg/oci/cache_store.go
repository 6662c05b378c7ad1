package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// writeBlob copies the blob desc from r into the cache, checking it
// against its digest and size on the way. The file is written under a
// temporary name and renamed into place only when whole and right, so a
// bad source never leaves a blob under its digest. A blob the cache has
// with the right size is not written again. image and where are for
// errors.
func (c *Cache) writeBlob(desc v1.Descriptor, r io.Reader, image, where string) (err error) {
	if c.hasBlob(desc) {
		return nil
	}
	p := c.blobPath(desc.Digest)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store blob %s in cache %s: %w", desc.Digest, c.Dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+desc.Digest.Hex+"-*")
	if err != nil {
		return fmt.Errorf("store blob %s in cache %s: %w", desc.Digest, c.Dir, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	vr := newVerifyingReader(io.NopCloser(r), desc, image, where, nil)
	_, err = io.Copy(tmp, vr)
	if err == nil {
		err = vr.Close()
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, ErrCorruptBlob) {
			return err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: blob %s: cut short: %w", where, desc.Digest, err)
		}
		return fmt.Errorf("%s: blob %s: %w", where, desc.Digest, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("store blob %s in cache %s: %w", desc.Digest, c.Dir, err)
	}
	return nil
}

// blobPath is where the cache's OCI layout keeps the blob h.
func (c *Cache) blobPath(h v1.Hash) string {
	return filepath.Join(string(c.path), "blobs", h.Algorithm, h.Hex)
}

// hasBlob says whether the cache holds the blob d with the right size.
// Its content is checked when it is read.
func (c *Cache) hasBlob(d v1.Descriptor) bool {
	st, err := os.Stat(c.blobPath(d.Digest))
	return err == nil && st.Mode().IsRegular() && st.Size() == d.Size
}

// nameImage points ref at the manifest desc in the cache's index.json,
// replacing what the name held. The blobs must all be there already: an
// image is named only once it is whole.
func (c *Cache) nameImage(ref string, desc v1.Descriptor) error {
	cref, err := CanonicalRef(ref)
	if err != nil {
		return err
	}
	desc.Platform = nil
	return c.setRef(cref, desc)
}

// setRef points the canonical reference cref at desc in index.json,
// replacing what the name held.
func (c *Cache) setRef(cref string, desc v1.Descriptor) error {
	err := c.updateIndex(func(im *v1.IndexManifest) error {
		kept := im.Manifests[:0]
		for _, d := range im.Manifests {
			if d.Annotations[RefAnnotation] != cref {
				kept = append(kept, d)
			}
		}
		desc.Annotations = map[string]string{RefAnnotation: cref}
		im.Manifests = append(kept, desc)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s in cache %s: %w", cref, c.Dir, err)
	}
	return nil
}

// indexWriter, in tests, stands between the index's bytes and the file, to
// make the write fail half-way.
var indexWriter = func(w io.Writer) io.Writer { return w }

// updateIndex changes index.json with change, under the index lock. The
// file is replaced whole (WriteFileAtomic): a crash or a full disk leaves
// the old index, never a torn one that would lose every name.
func (c *Cache) updateIndex(change func(*v1.IndexManifest) error) error {
	unlock, err := c.lockIndex(true)
	if err != nil {
		return err
	}
	defer unlock()
	file := filepath.Join(string(c.path), "index.json")
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read image cache %s: %w", c.Dir, err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("read image cache %s: %s: %w", c.Dir, file, err)
	}
	if err := change(im); err != nil {
		return err
	}
	return writeIndex(file, im)
}

// writeIndex writes im to file atomically, indented as the layout package
// writes it.
func writeIndex(file string, im *v1.IndexManifest) error {
	out, err := json.MarshalIndent(im, "", "   ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", file, err)
	}
	return WriteFileAtomic(file, 0o644, func(w io.Writer) error {
		_, err := indexWriter(w).Write(out)
		return err
	})
}

// storeImage copies img, read from a layout, into the cache under ref:
// blobs first, each checked, then the name.
func (c *Cache) storeImage(ref, where string, img v1.Image) error {
	if err := c.copyBlobs(ref, where, img); err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	desc, err := descriptorOf(img, raw)
	if err != nil {
		return err
	}
	return c.nameImage(ref, desc)
}

// copyBlobs copies every blob of img (read from a layout directory) into
// the cache, each checked on the way. Nothing is named yet: Put does that
// once all are there.
func (c *Cache) copyBlobs(ref, where string, img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mdesc, err := descriptorOf(img, raw)
	if err != nil {
		return fmt.Errorf("image %s in %s: %w", ref, where, err)
	}
	if err := c.writeBlob(mdesc, bytes.NewReader(raw), ref, where); err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("image %s in %s: %w", ref, where, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := c.writeBlob(m.Config, bytes.NewReader(cfg), ref, where); err != nil {
		return err
	}
	for _, d := range m.Layers {
		if c.hasBlob(d) {
			continue // not even opened: closing the reader would check it
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return fmt.Errorf("image %s in %s: %w", ref, where, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = c.writeBlob(d, rc, ref, where)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// descriptorOf is the descriptor of img's manifest, raw.
func descriptorOf(img v1.Image, raw []byte) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}, nil
}
