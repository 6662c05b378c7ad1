package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ContainerdNameAnnotation holds an image's full name in the index.json of
// the layouts containerd and Docker (25 and later, `docker save`) write,
// whose ref.name is only the tag.
const ContainerdNameAnnotation = "io.containerd.image.name"

// maxIndexJSON bounds what is read of an index.json or oci-layout file.
const maxIndexJSON = 64 << 20

// layoutName is the image reference an index.json entry names, in
// CanonicalRef form, or "" when it names none. The rules, in order:
//
//   - io.containerd.image.name, when present, is the full name;
//   - a ref.name with a "/", ":" or "@" is a full reference
//     ("keel/init:0.1", "ghcr.io/x/y:1", "alpine:3.19");
//   - a bare ref.name is a tag (as skopeo writes for oci:DIR:TAG): the
//     repository is the layout's base name, the directory's or the tar
//     file's without ".tar" (DIR alpine, ref.name 3.19 -> alpine:3.19).
func layoutName(d v1.Descriptor, base string) (string, error) {
	if full := d.Annotations[ContainerdNameAnnotation]; full != "" {
		return CanonicalRef(full)
	}
	ref := d.Annotations[RefAnnotation]
	if ref == "" {
		return "", nil
	}
	if strings.ContainsAny(ref, "/:@") {
		return CanonicalRef(ref)
	}
	if _, err := name.NewTag("x:" + ref); err != nil {
		return "", fmt.Errorf("ref.name %q is neither a reference nor a tag", ref)
	}
	if _, err := name.NewRepository(base); err != nil {
		return "", fmt.Errorf("ref.name %q is a bare tag, and %q is no repository name to put it on: give the image's name with --tag REF", ref, base)
	}
	return CanonicalRef(base + ":" + ref)
}

// layoutBase is the repository name bare tags of the layout at path get:
// its base name, without a .tar extension.
func layoutBase(path string) string {
	b := filepath.Base(filepath.Clean(path))
	return strings.TrimSuffix(b, ".tar")
}

// parseLayoutFiles checks an oci-layout file and parses an index.json;
// where says what they come from.
func parseLayoutFiles(ociLayout, index []byte, where string) (*v1.IndexManifest, error) {
	if ociLayout == nil {
		return nil, fmt.Errorf("%s: no oci-layout file: not an OCI image layout", where)
	}
	var lf struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(ociLayout, &lf); err != nil || lf.Version == "" {
		return nil, fmt.Errorf("%s: oci-layout is not {\"imageLayoutVersion\": ...}", where)
	}
	if !strings.HasPrefix(lf.Version, "1.") {
		return nil, fmt.Errorf("%s: image layout version %q, want 1.x", where, lf.Version)
	}
	if index == nil {
		return nil, fmt.Errorf("%s: no index.json: not an OCI image layout", where)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", where, err)
	}
	return im, nil
}
