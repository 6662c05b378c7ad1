package oci

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Import stores in the cache the images of src, which is one of:
//
//   - an OCI image layout directory (oci-layout, index.json, blobs/);
//   - a tar of one (`skopeo copy ... oci-archive:`, `docker save` of
//     Docker 25 and later);
//   - a docker-archive tar (`docker save` before Docker 25).
//
// A tar's format is read from its content, not its name. Images are stored
// under the names the source gives (see layoutName for a layout's), or,
// when tag is not empty, the source's one image under tag. From a
// multi-platform index, the image for platform is taken (the zero value is
// DefaultPlatform). Every blob is checked against its digest, and an image
// is named in the cache only once all its blobs are there. It returns the
// names stored.
func (c *Cache) Import(src, tag string, platform v1.Platform) ([]string, error) {
	if platform.OS == "" {
		platform = DefaultPlatform
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	if st.IsDir() {
		return c.importLayoutDir(src, tag, platform)
	}
	return c.importTar(src, tag, platform)
}

// layoutEntry is one image an index.json names.
type layoutEntry struct {
	name string
	desc v1.Descriptor
}

// namedEntries lists the entries of a layout's index to import: all those
// with a name, or, with tag, the one entry (there must be exactly one).
func namedEntries(im *v1.IndexManifest, base, tag, where string) ([]layoutEntry, error) {
	if tag != "" {
		if len(im.Manifests) != 1 {
			return nil, fmt.Errorf("%s: --tag names one image, and its index.json has %d", where, len(im.Manifests))
		}
		cref, err := CanonicalRef(tag)
		if err != nil {
			return nil, err
		}
		return []layoutEntry{{cref, im.Manifests[0]}}, nil
	}
	var out []layoutEntry
	for _, d := range im.Manifests {
		n, err := layoutName(d, base)
		if err != nil {
			return nil, fmt.Errorf("%s: index.json entry %s: %w", where, d.Digest, err)
		}
		if n != "" {
			out = append(out, layoutEntry{n, d})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: index.json names no image (no %s annotation); give one with --tag REF", where, RefAnnotation)
	}
	return out, nil
}

// importLayoutDir imports the images of an OCI layout directory.
func (c *Cache) importLayoutDir(dir, tag string, platform v1.Platform) ([]string, error) {
	l, err := OpenLayout(dir)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	entries, err := namedEntries(l.index, layoutBase(dir), tag, l.where)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	// Every image is picked and read before any is stored.
	imgs := make([]v1.Image, len(entries))
	for i, e := range entries {
		if imgs[i], err = pickImage(dir, e.desc, e.name, l.where, false, platform); err != nil {
			return nil, fmt.Errorf("import %w", err)
		}
	}
	var names []string
	for i, e := range entries {
		if err := c.storeImage(e.name, l.where, imgs[i]); err != nil {
			return names, fmt.Errorf("import %w", err)
		}
		names = append(names, e.name)
	}
	return names, nil
}
