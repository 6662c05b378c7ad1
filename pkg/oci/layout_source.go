package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layout is an OCI image layout directory that a build takes images from
// before the cache and any registry (keel build --layout DIR).
type Layout struct {
	Dir   string
	where string
	index *v1.IndexManifest
	// names maps the canonical reference of each named entry to it.
	names map[string]v1.Descriptor
}

// OpenLayout reads the oci-layout and index.json of the layout at dir.
func OpenLayout(dir string) (*Layout, error) {
	where := "layout " + dir
	read := func(name string) ([]byte, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxIndexJSON))
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", where)
	}
	ol, err := read("oci-layout")
	if err != nil {
		return nil, err
	}
	idx, err := read("index.json")
	if err != nil {
		return nil, err
	}
	im, err := parseLayoutFiles(ol, idx, where)
	if err != nil {
		return nil, err
	}
	l := &Layout{Dir: dir, where: where, index: im, names: map[string]v1.Descriptor{}}
	base := layoutBase(dir)
	for _, d := range im.Manifests {
		// An entry whose name does not parse is left out here: it can
		// never match a reference of the YAML.
		if n, err := layoutName(d, base); err == nil && n != "" {
			l.names[n] = d
		}
	}
	return l, nil
}

// find returns the image ref names in the layout, for platform, and
// whether the layout has it. A digest reference matches an entry with
// that digest (content is content, whatever its name).
func (l *Layout) find(ref string, platform v1.Platform) (v1.Image, bool, error) {
	cref, err := CanonicalRef(ref)
	if err != nil {
		return nil, false, err
	}
	d, ok := l.names[cref]
	if at := strings.LastIndex(cref, "@"); !ok && at >= 0 {
		h, err := v1.NewHash(cref[at+1:])
		if err != nil {
			return nil, false, fmt.Errorf("invalid digest in %q: %w", ref, err)
		}
		for _, e := range l.index.Manifests {
			if e.Digest == h {
				d, ok = e, true
			}
		}
		if !ok {
			// A lock file pins the image picked for the platform, which a
			// multi-platform entry holds one level down.
			for _, e := range l.index.Manifests {
				if !e.MediaType.IsIndex() {
					continue
				}
				img, err := pickImage(l.Dir, e, cref, l.where, false, platform)
				if err != nil {
					continue
				}
				if got, err := img.Digest(); err == nil && got == h {
					return img, true, nil
				}
			}
		}
	}
	if !ok {
		return nil, false, nil
	}
	img, err := pickImage(l.Dir, d, cref, l.where, false, platform)
	if err != nil {
		return nil, true, err
	}
	return img, true, nil
}

// fromLayouts looks ref up in the resolver's layouts, in order. What is
// found is copied into the cache (so that the lock file records its digest
// and the next build needs no layout) and returned from there.
func (r *Resolver) fromLayouts(ref string) (v1.Image, bool, error) {
	for _, l := range r.Layouts {
		img, ok, err := l.find(ref, r.platform())
		if err != nil {
			return nil, true, err
		}
		if !ok {
			continue
		}
		want, err := img.Digest()
		if err != nil {
			return nil, true, err
		}
		if cached, err := r.Cache.Image(ref); err == nil {
			if d, err := cached.Digest(); err == nil && d == want && r.Cache.checkBlobs(ref, cached) == nil {
				return cached, true, nil
			}
		}
		r.logf("copy %s from %s\n", ref, l.where)
		if err := r.Cache.storeImage(ref, l.where, img); err != nil {
			return nil, true, err
		}
		cached, err := r.Cache.Image(ref)
		return cached, true, err
	}
	return nil, false, nil
}
