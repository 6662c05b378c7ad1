package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tarScan is what one pass over an image tar found.
type tarScan struct {
	ociLayout, index []byte
	// dockerManifest is set when the tar has a manifest.json: it is (also)
	// a docker-archive.
	dockerManifest bool
}

// importTar imports an image tar, whatever its format: an OCI layout (its
// blobs stream straight into the cache, each checked against the digest
// its name gives and renamed into place only when right), a
// docker-archive, or both at once, as Docker 25 and later write. For a
// tar that is both, the OCI index is used, and the docker manifest when
// the index names no image.
func (c *Cache) importTar(file, tag string, platform v1.Platform) ([]string, error) {
	where := "archive " + file
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	defer f.Close()
	if err := notCompressed(f, where); err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	scan, err := c.scanTar(f, where)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	if scan.index == nil && scan.ociLayout == nil {
		if scan.dockerManifest {
			return c.importDockerArchive(file, tag)
		}
		return nil, fmt.Errorf("import %s: not an image archive: no index.json (OCI layout) and no manifest.json (docker save)", where)
	}
	im, err := parseLayoutFiles(scan.ociLayout, scan.index, where)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	entries, err := namedEntries(im, layoutBase(file), tag, where)
	if err != nil {
		if scan.dockerManifest {
			return c.importDockerArchive(file, tag)
		}
		return nil, fmt.Errorf("import %w", err)
	}
	// The blobs are in the cache now; each image is checked whole there
	// before any is named.
	root := string(c.path)
	descs := make([]v1.Descriptor, len(entries))
	for i, e := range entries {
		img, err := pickImage(root, e.desc, e.name, where, false, platform)
		if err != nil {
			return nil, fmt.Errorf("import %w", err)
		}
		if err := c.checkImported(e.name, where, img); err != nil {
			return nil, fmt.Errorf("import %w", err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("import %w", err)
		}
		if descs[i], err = descriptorOf(img, raw); err != nil {
			return nil, fmt.Errorf("import %s: %w", where, err)
		}
	}
	var names []string
	for i, e := range entries {
		if err := c.nameImage(e.name, descs[i]); err != nil {
			return names, err
		}
		names = append(names, e.name)
	}
	return names, nil
}

// scanTar reads an image tar once: oci-layout and index.json are kept,
// blobs/ALG/HEX go into the cache, checked.
func (c *Cache) scanTar(r io.Reader, where string) (*tarScan, error) {
	var s tarScan
	tr := tar.NewReader(r)
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if entries == 0 {
				return nil, fmt.Errorf("%s: empty or not a tar", where)
			}
			return &s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a tar, or cut short: %w", where, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch {
		case name == "oci-layout":
			if s.ociLayout, err = readSmall(tr, h, where); err != nil {
				return nil, err
			}
		case name == "index.json":
			if s.index, err = readSmall(tr, h, where); err != nil {
				return nil, err
			}
		case name == "manifest.json":
			s.dockerManifest = true
		case strings.HasPrefix(name, "blobs/") && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA):
			d, err := blobName(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := c.writeBlob(v1.Descriptor{Digest: d, Size: h.Size}, tr, "", where); err != nil {
				return nil, err
			}
		}
	}
}

// notCompressed refuses a compressed tar with a message that says so,
// rather than "invalid tar header"; f is left at its start.
func notCompressed(f *os.File, where string) error {
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return fmt.Errorf("%s is gzip-compressed: gunzip it and import the tar", where)
	case n == 4 && string(magic) == "\x28\xb5\x2f\xfd":
		return fmt.Errorf("%s is zstd-compressed: unzstd it and import the tar", where)
	}
	return nil
}

func readSmall(tr *tar.Reader, h *tar.Header, where string) ([]byte, error) {
	if h.Size > maxIndexJSON {
		return nil, fmt.Errorf("%s: %s has %d bytes, too many for an index", where, h.Name, h.Size)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", where, h.Name, err)
	}
	return b, nil
}

// blobName is the digest a layout's blob path names: blobs/sha256/HEX.
func blobName(name string) (v1.Hash, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return v1.Hash{}, fmt.Errorf("%s: not a blob path (blobs/ALGORITHM/HEX)", name)
	}
	h, err := v1.NewHash(parts[1] + ":" + parts[2])
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: not a blob path: %w", name, err)
	}
	return h, nil
}

// checkImported makes sure every layer of an image being imported is in
// the cache with its size: the archive brought it, checked, or the cache
// had it.
func (c *Cache) checkImported(ref, where string, img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("image %s in %s: %w", ref, where, err)
	}
	for _, d := range m.Layers {
		if !c.hasBlob(d) {
			return &BlobError{Image: ref, Digest: d.Digest, Where: where, Problem: "is missing"}
		}
	}
	return nil
}
