package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Remove drops ref from the cache's index. Its blobs stay until Clean.
func (c *Cache) Remove(ref string) error {
	cref, err := CanonicalRef(ref)
	if err != nil {
		return err
	}
	err = c.updateIndex(func(im *v1.IndexManifest) error {
		kept := im.Manifests[:0]
		for _, d := range im.Manifests {
			if d.Annotations[RefAnnotation] != cref {
				kept = append(kept, d)
			}
		}
		if len(kept) == len(im.Manifests) {
			return fmt.Errorf("%s: %w", cref, ErrNotCached)
		}
		im.Manifests = kept
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotCached) {
		return fmt.Errorf("remove %s from cache %s: %w", cref, c.Dir, err)
	}
	return err
}

// Clean deletes every blob that no index entry reaches and that is older
// than minAge (a blob younger than that may belong to a pull in flight,
// whose index entry is written after its blobs). It returns the number of
// files removed and their bytes.
func (c *Cache) Clean(minAge time.Duration) (files int, freed int64, err error) {
	unlock, err := c.lockIndex(true)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	idx, err := c.path.ImageIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("read image cache %s: %w", c.Dir, err)
	}
	keep := map[string]bool{}
	if err := reach(idx, keep); err != nil {
		return 0, 0, fmt.Errorf("walk image cache %s: %w", c.Dir, err)
	}
	now := time.Now()
	root := filepath.Join(c.Dir, "oci", "blobs")
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		alg := filepath.Base(filepath.Dir(p))
		if keep[alg+":"+d.Name()] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if now.Sub(info.ModTime()) < minAge {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		files++
		freed += info.Size()
		return nil
	})
	if err != nil {
		return files, freed, fmt.Errorf("clean image cache %s: %w", c.Dir, err)
	}
	return files, freed, nil
}

// reach marks every blob an index reaches: manifests, configs, layers.
func reach(idx v1.ImageIndex, keep map[string]bool) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		keep[d.Digest.String()] = true
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := reach(child, keep); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			keep[m.Config.Digest.String()] = true
			for _, l := range m.Layers {
				keep[l.Digest.String()] = true
			}
		}
	}
	return nil
}

// validateImage reads every layer of img and checks it against its digest.
func validateImage(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("layer %s: content has digest %s", want, got)
		}
	}
	return nil
}
