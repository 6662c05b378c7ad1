package oci

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxIndexDepth bounds indexes nested in indexes.
const maxIndexDepth = 4

// pickImage returns the image desc names in the layout at root: desc
// itself when it is an image manifest, or, for a multi-platform index,
// the manifest for platform, picked as a pull picks it. Every blob read
// is checked against its digest.
func pickImage(root string, desc v1.Descriptor, ref, where string, removeBad bool, platform v1.Platform) (v1.Image, error) {
	for depth := 0; ; depth++ {
		switch {
		case desc.MediaType.IsImage():
			img, err := newBlobImage(root, desc, ref, where, removeBad)
			if err != nil {
				return nil, err
			}
			if err := checkPlatform(img, platform); err != nil {
				return nil, fmt.Errorf("image %s in %s: %w", ref, where, err)
			}
			return img, nil
		case desc.MediaType.IsIndex():
			if depth == maxIndexDepth {
				return nil, fmt.Errorf("image %s in %s: indexes nested more than %d deep", ref, where, maxIndexDepth)
			}
			b, err := (&blobImage{root: root, ref: ref, where: where, removeBad: removeBad}).readBlob(desc)
			if err != nil {
				return nil, err
			}
			var im v1.IndexManifest
			if err := json.Unmarshal(b, &im); err != nil {
				return nil, fmt.Errorf("image %s in %s: index %s: %w", ref, where, desc.Digest, err)
			}
			child, err := forPlatform(im.Manifests, platform)
			if err != nil {
				return nil, fmt.Errorf("image %s in %s: %w", ref, where, err)
			}
			desc = child
		default:
			return nil, fmt.Errorf("image %s in %s: %s is a %q, not an image or an index", ref, where, desc.Digest, desc.MediaType)
		}
	}
}

// forPlatform picks the entry of a multi-platform index for platform. An
// index of one entry that does not say its platform is taken as is; the
// image's config is checked afterwards.
func forPlatform(ds []v1.Descriptor, platform v1.Platform) (v1.Descriptor, error) {
	var have []string
	var unsaid []v1.Descriptor
	for _, d := range ds {
		if d.Platform == nil {
			// Attestation manifests and the like say nothing either;
			// only images and indexes are candidates.
			if d.MediaType.IsImage() || d.MediaType.IsIndex() {
				unsaid = append(unsaid, d)
			}
			continue
		}
		if d.Platform.Satisfies(platform) {
			return d, nil
		}
		have = append(have, d.Platform.String())
	}
	if len(have) == 0 && len(unsaid) == 1 {
		return unsaid[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s in its index (it has %s)", platform.String(), orNone(have))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none that says its platform"
	}
	return strings.Join(s, ", ")
}
