package oci

import (
	"fmt"
)

// CachedImageInfo is a cache listing entry with what `keel cache ls -l`
// shows of the image itself.
type CachedImageInfo struct {
	CachedImage
	// Platform is os/architecture[/variant] from the image's config, or
	// "" when it does not say.
	Platform string
	// TotalSize is the bytes of the manifest, config and layers: what the
	// image takes in the cache, counting layers it shares with others.
	TotalSize int64
}

// ListInfo is List with each image's platform and total size, read from
// its manifest and config in the cache.
func (c *Cache) ListInfo() ([]CachedImageInfo, error) {
	list, err := c.List()
	if err != nil {
		return nil, err
	}
	out := make([]CachedImageInfo, len(list))
	for i, ci := range list {
		out[i].CachedImage = ci
		img, err := c.Image(ci.Ref)
		if err != nil {
			return nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("cached image %s: %w", ci.Ref, err)
		}
		out[i].TotalSize = ci.Size + m.Config.Size
		for _, l := range m.Layers {
			out[i].TotalSize += l.Size
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("cached image %s: %w", ci.Ref, err)
		}
		if cf.OS != "" {
			out[i].Platform = cf.OS + "/" + cf.Architecture
			if cf.Variant != "" {
				out[i].Platform += "/" + cf.Variant
			}
		}
	}
	return out, nil
}
