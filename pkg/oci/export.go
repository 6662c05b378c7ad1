package oci

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ArchiveFormat is the kind of tar Export writes.
type ArchiveFormat string

const (
	// DockerArchive is what `docker save` wrote before Docker 25 and
	// `docker load` reads: manifest.json, the config, a tar per layer.
	DockerArchive ArchiveFormat = "docker-archive"
	// OCIArchive is a tar of an OCI image layout (oci-layout, index.json,
	// blobs/), as `skopeo copy oci-archive:` writes and Docker 25 and
	// later read.
	OCIArchive ArchiveFormat = "oci"
)

// ArchiveFormats are the formats Export writes.
var ArchiveFormats = []ArchiveFormat{OCIArchive, DockerArchive}

// ParseArchiveFormat checks an archive format's name.
func ParseArchiveFormat(s string) (ArchiveFormat, error) {
	for _, f := range ArchiveFormats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown archive format %q (want %s or %s)", s, OCIArchive, DockerArchive)
}

// Export writes the cached image ref to file as a tar of format, which
// Import (and `docker load`) read back. The file appears whole or not at
// all, with mode 0644.
func (c *Cache) Export(ref, file string, format ArchiveFormat) error {
	return WriteFileAtomic(file, 0o644, func(w io.Writer) error {
		return c.WriteArchive(w, ref, format)
	})
}

// WriteArchive writes the cached image ref to w as a tar of format. Every
// blob is checked against its digest as it is read.
func (c *Cache) WriteArchive(w io.Writer, ref string, format ArchiveFormat) error {
	img, err := c.Image(ref)
	if err != nil {
		return err
	}
	cref, _ := CanonicalRef(ref)
	switch format {
	case DockerArchive, "":
		tag, err := name.NewTag(cref)
		if err != nil {
			return fmt.Errorf("export %s: a docker-archive names its image by tag: %w", cref, err)
		}
		if err := tarball.Write(tag, img, w); err != nil {
			return fmt.Errorf("export %s: %w", cref, err)
		}
		return nil
	case OCIArchive:
		if err := writeOCIArchive(w, cref, img); err != nil {
			return fmt.Errorf("export %s: %w", cref, err)
		}
		return nil
	}
	_, err = ParseArchiveFormat(string(format))
	return err
}

// writeOCIArchive writes img as the one image of an OCI layout tar. The
// index names it the way containerd and Docker do: the full reference in
// io.containerd.image.name, the tag alone in
// org.opencontainers.image.ref.name.
func writeOCIArchive(w io.Writer, cref string, img v1.Image) error {
	desc, err := partial.Descriptor(img)
	if err != nil {
		return err
	}
	desc.Annotations = map[string]string{ContainerdNameAnnotation: cref}
	if tag, err := name.NewTag(cref); err == nil {
		desc.Annotations[RefAnnotation] = tag.TagStr()
	}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		desc.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []v1.Descriptor{*desc}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	addBytes := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blobName := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
	if err := addBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := addBytes("index.json", index); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	if err := addBytes(blobName(desc.Digest), manifest); err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if err := addBytes(blobName(m.Config.Digest), config); err != nil {
		return err
	}
	written := map[v1.Hash]bool{desc.Digest: true, m.Config.Digest: true}
	for _, ld := range m.Layers {
		if written[ld.Digest] {
			continue // an image may repeat a layer; a layout holds each blob once
		}
		written[ld.Digest] = true
		l, err := img.LayerByDigest(ld.Digest)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Name: blobName(ld.Digest), Typeflag: tar.TypeReg, Mode: 0o644, Size: ld.Size})
		if err == nil {
			_, err = io.Copy(tw, rc)
		}
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", ld.Digest, err)
		}
	}
	return tw.Close()
}

// ImportReader imports the image tar read from r (an OCI layout tar or a
// docker-archive, as Import takes; `keel cache import -`). The tar is
// copied into the cache's directory first, as the formats need more than
// one pass. A layout's bare tag T is named "stdin:T".
func (c *Cache) ImportReader(r io.Reader, tag string, platform v1.Platform) ([]string, error) {
	dir, err := os.MkdirTemp(c.Dir, ".import-*")
	if err != nil {
		return nil, fmt.Errorf("import from standard input: %w", err)
	}
	defer os.RemoveAll(dir)
	file := path.Join(dir, "stdin.tar")
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("import from standard input: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("import from standard input: %w", err)
	}
	return c.Import(file, tag, platform)
}
