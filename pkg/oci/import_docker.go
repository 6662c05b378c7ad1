package oci

import (
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// importDockerArchive stores the images of a docker-archive tar (as
// `docker save` writes) under the names it carries, or, when tag is not
// empty, its one image under tag. It returns the names stored.
func (c *Cache) importDockerArchive(file, tag string) ([]string, error) {
	if tag != "" {
		img, err := tarball.ImageFromPath(file, nil)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", file, err)
		}
		if err := c.Put(tag, img); err != nil {
			return nil, err
		}
		return []string{tag}, nil
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	var names []string
	for _, e := range m {
		for _, t := range e.RepoTags {
			nt, err := name.NewTag(t)
			if err != nil {
				return names, fmt.Errorf("import %s: tag %q: %w", file, t, err)
			}
			img, err := tarball.ImageFromPath(file, &nt)
			if err != nil {
				return names, fmt.Errorf("import %s: %s: %w", file, t, err)
			}
			if err := c.Put(t, img); err != nil {
				return names, err
			}
			names = append(names, t)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("import %s: the archive names no image; give one with --tag REF", file)
	}
	return names, nil
}
