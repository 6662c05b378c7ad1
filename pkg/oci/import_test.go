package oci

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// testLayout writes an OCI layout at dir holding imgs, each with the
// annotations given (nil: none).
func testLayout(t *testing.T, dir string, imgs []v1.Image, annotations []map[string]string) layout.Path {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		if err := p.AppendImage(img, layout.WithAnnotations(annotations[i])); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// tarDir packs dir into file, with extra files added at the end.
func tarDir(t *testing.T, dir, file string, extra map[string]string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	for name, data := range extra {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wantCached checks that the cache holds ref with img's digest, whole.
func wantCached(t *testing.T, c *Cache, ref string, img v1.Image) {
	t.Helper()
	got, err := c.Image(ref)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Errorf("%s: digest %s, want %s", ref, digestOf(t, got), digestOf(t, img))
	}
	if err := validateImage(got); err != nil {
		t.Errorf("%s: %v", ref, err)
	}
}

func cachedNames(t *testing.T, c *Cache) []string {
	t.Helper()
	l, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range l {
		out = append(out, i.Ref)
	}
	return out
}

// A layout directory and the same layout as a tar import alike: full
// ref.names as they are, a bare tag on the layout's base name, unnamed
// entries left out; --tag names a layout's one image.
func TestImportLayoutDirAndTar(t *testing.T) {
	a, _ := random.Image(1000, 2)
	b, _ := random.Image(500, 1)
	u, _ := random.Image(100, 1)
	dir := filepath.Join(t.TempDir(), "bimage")
	testLayout(t, dir, []v1.Image{a, b, u}, []map[string]string{
		{RefAnnotation: "test/a:1"}, {RefAnnotation: "2"}, nil})
	file := filepath.Join(t.TempDir(), "bimage.tar")
	tarDir(t, dir, file, nil)

	for _, src := range []string{dir, file} {
		t.Run(filepath.Ext(src), func(t *testing.T) {
			c, _ := OpenCache(t.TempDir())
			names, err := c.Import(src, "", v1.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"test/a:1", "bimage:2"}) {
				t.Errorf("imported %q", names)
			}
			wantCached(t, c, "test/a:1", a)
			wantCached(t, c, "bimage:2", b)
			if n := len(cachedNames(t, c)); n != 2 {
				t.Errorf("%d images cached, want 2", n)
			}
			_, err = c.Import(src, "x/y:1", v1.Platform{})
			if err == nil || !strings.Contains(err.Error(), "--tag names one image, and its index.json has 3") {
				t.Errorf("--tag on three images: %v", err)
			}
		})
	}

	one := filepath.Join(t.TempDir(), "one")
	testLayout(t, one, []v1.Image{u}, []map[string]string{nil})
	c, _ := OpenCache(t.TempDir())
	_, err := c.Import(one, "", v1.Platform{})
	if err == nil || !strings.Contains(err.Error(), "index.json names no image") {
		t.Errorf("unnamed layout: %v", err)
	}
	if names, err := c.Import(one, "keel/u:3", v1.Platform{}); err != nil || !slices.Equal(names, []string{"keel/u:3"}) {
		t.Fatalf("--tag: %q %v", names, err)
	}
	wantCached(t, c, "keel/u:3", u)
}

// Docker 25's docker save is an OCI layout and a docker-archive at once;
// the full name comes from io.containerd.image.name, not the bare tag.
func TestImportDockerSaveBothFormats(t *testing.T) {
	img, _ := random.Image(800, 1)
	dir := t.TempDir()
	testLayout(t, dir, []v1.Image{img}, []map[string]string{{
		ContainerdNameAnnotation: "docker.io/library/alpine:3.19", RefAnnotation: "3.19"}})
	file := filepath.Join(t.TempDir(), "save.tar")
	tarDir(t, dir, file, map[string]string{"manifest.json": `[{"Config":"x","RepoTags":["ignored:1"],"Layers":[]}]`})
	c, _ := OpenCache(t.TempDir())
	names, err := c.Import(file, "", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"alpine:3.19"}) {
		t.Errorf("imported %q", names)
	}
	wantCached(t, c, "alpine:3.19", img)
}

// A multi-platform index in a layout: the platform asked for is taken.
func TestImportLayoutPicksPlatform(t *testing.T) {
	amd, _ := random.Image(100, 1)
	arm, _ := random.Image(100, 1)
	amd, arm = withPlatform(t, amd, "amd64"), withPlatform(t, arm, "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json"),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	dir := t.TempDir()
	p, _ := layout.Write(dir, empty.Index)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefAnnotation: "test/multi:1"})); err != nil {
		t.Fatal(err)
	}
	for arch, want := range map[string]v1.Image{"amd64": amd, "arm64": arm} {
		c, _ := OpenCache(t.TempDir())
		if _, err := c.Import(dir, "", v1.Platform{OS: "linux", Architecture: arch}); err != nil {
			t.Fatal(err)
		}
		wantCached(t, c, "test/multi:1", want)
	}
	// As a lock file pins it: the arm64 image's own digest, found inside
	// the index by a build with --layout.
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCache(t.TempDir())
	r := &Resolver{Cache: c, Layouts: []*Layout{l}, Platform: v1.Platform{OS: "linux", Architecture: "arm64"}}
	got, err := r.Image(context.Background(), "test/multi@"+digestOf(t, arm).String())
	if err != nil || digestOf(t, got) != digestOf(t, arm) {
		t.Fatalf("pinned arm64 image from the layout: %v", err)
	}
	_, err = c.Import(dir, "", v1.Platform{OS: "linux", Architecture: "s390x"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x in its index (it has linux/amd64, linux/arm64/v8)") {
		t.Errorf("s390x: %v", err)
	}
}

// Broken archives fail naming the file and the fault, and leave nothing
// named in the cache, nor any bad blob under its digest.
func TestImportBadArchives(t *testing.T) {
	img, _ := random.Image(700, 2)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	good := t.TempDir()
	testLayout(t, good, []v1.Image{img}, []map[string]string{{RefAnnotation: "test/bad:1"}})

	variant := func(name string, change func(dir string)) string {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		change(dir)
		file := filepath.Join(t.TempDir(), name+".tar")
		tarDir(t, dir, file, nil)
		return file
	}
	blob := func(dir string) string { return filepath.Join(dir, "blobs", ld.Algorithm, ld.Hex) }
	notTar := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(notTar, []byte(strings.Repeat("not a tar\n", 100)), 0o644)
	gz := filepath.Join(t.TempDir(), "x.tar.gz")
	os.WriteFile(gz, []byte("\x1f\x8b\x08\x00rest"), 0o644)
	empty := filepath.Join(t.TempDir(), "empty.tar")
	os.WriteFile(empty, make([]byte, 1024), 0o644)

	truncated := variant("truncated", func(string) {})
	if st, err := os.Stat(truncated); err != nil {
		t.Fatal(err)
	} else if err := os.Truncate(truncated, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	dirVariant := func(name string, change func(dir string)) string {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		change(dir)
		return dir
	}

	for _, tc := range []struct {
		name, file, want string
	}{
		{"truncated tar", truncated, ": cut short: unexpected EOF"},
		{"dir without oci-layout", dirVariant("d1", func(d string) { os.Remove(filepath.Join(d, "oci-layout")) }), "no oci-layout file: not an OCI image layout"},
		{"dir missing blob", dirVariant("d2", func(d string) { os.Remove(blob(d)) }), "image test/bad:1: blob " + ld.String() + " in layout "},
		{"dir bad digest", dirVariant("d3", func(d string) { flipByte(t, blob(d), 5) }), "image test/bad:1: blob " + ld.String() + " in layout "},
		{"no index", variant("noindex", func(d string) { os.Remove(filepath.Join(d, "index.json")) }), "no index.json: not an OCI image layout"},
		{"no oci-layout", variant("nolayout", func(d string) { os.Remove(filepath.Join(d, "oci-layout")) }), "no oci-layout file: not an OCI image layout"},
		{"missing blob", variant("missing", func(d string) { os.Remove(blob(d)) }), "image test/bad:1: blob " + ld.String() + " in archive "},
		{"bad digest", variant("flipped", func(d string) { flipByte(t, blob(d), 5) }), "blob " + ld.String() + " in archive "},
		{"bad index", variant("badindex", func(d string) { os.WriteFile(filepath.Join(d, "index.json"), []byte("{"), 0o644) }), "index.json: "},
		{"not a tar", notTar, "not a tar"},
		{"gzip", gz, " is gzip-compressed: gunzip it and import the tar"},
		{"empty tar", empty, ": empty or not a tar"},
		{"neither format", variant("neither", func(d string) {
			os.Remove(filepath.Join(d, "index.json"))
			os.Remove(filepath.Join(d, "oci-layout"))
		}), "not an image archive: no index.json (OCI layout) and no manifest.json (docker save)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := OpenCache(t.TempDir())
			_, err := c.Import(tc.file, "", v1.Platform{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("error = %v, want one naming %s and saying %q", err, tc.file, tc.want)
			}
			t.Log(err)
			if n := cachedNames(t, c); len(n) != 0 {
				t.Errorf("cache names %q after a failed import", n)
			}
			if _, err := os.Stat(blob(filepath.Join(c.Dir, "oci"))); err == nil && tc.name == "bad digest" {
				t.Error("corrupt blob stored under its digest")
			}
		})
	}
}

// keel build --layout: an image the layout names comes from there, never
// from a registry (none exists here), and is copied into the cache once.
func TestResolverLayoutsFirst(t *testing.T) {
	img, _ := random.Image(600, 2)
	dir := filepath.Join(t.TempDir(), "app")
	testLayout(t, dir, []v1.Image{withPlatform(t, img, "amd64")}, []map[string]string{{RefAnnotation: "7"}})
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCache(t.TempDir())
	var progress strings.Builder
	r := &Resolver{Cache: c, Layouts: []*Layout{l}, Progress: &progress}
	// A bare tag 7 in a layout named app is app:7, Docker Hub's library/app:7.
	got, err := r.Image(context.Background(), "docker.io/library/app:7")
	if err != nil {
		t.Fatal(err)
	}
	want := withPlatform(t, img, "amd64")
	if digestOf(t, got) != digestOf(t, want) {
		t.Errorf("digest %s, want %s", digestOf(t, got), digestOf(t, want))
	}
	if progress.String() != "copy docker.io/library/app:7 from layout "+dir+"\n" {
		t.Errorf("progress = %q", progress.String())
	}
	wantCached(t, c, "app:7", want)

	progress.Reset()
	if _, err := r.Image(context.Background(), "app:7"); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(context.Background(), "app:7"); err != nil {
		t.Fatalf("--pull of a layout image: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("copied again: %q", progress.String())
	}
	// By digest, as a lock file pins it.
	if _, err := r.Image(context.Background(), "other/name@"+digestOf(t, want).String()); err != nil {
		t.Errorf("by digest: %v", err)
	}
	// A corrupt blob in the layout is refused, and nothing is named.
	layers, _ := want.Layers()
	ld, _ := layers[1].Digest()
	c2, _ := OpenCache(t.TempDir())
	flipByte(t, filepath.Join(dir, "blobs", ld.Algorithm, ld.Hex), 0)
	_, err = (&Resolver{Cache: c2, Layouts: []*Layout{l}}).Image(context.Background(), "app:7")
	if !errors.Is(err, ErrCorruptBlob) || !strings.Contains(err.Error(), "blob "+ld.String()+" in layout "+dir) {
		t.Errorf("corrupt layout blob: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", ld.Algorithm, ld.Hex)); err != nil {
		t.Errorf("the user's layout blob was removed: %v", err)
	}
	if n := cachedNames(t, c2); len(n) != 0 {
		t.Errorf("cache names %q", n)
	}
}

// A tar that is a docker-archive and an OCI layout whose index names no
// image is read as the docker-archive.
func TestImportFallsBackToDockerManifest(t *testing.T) {
	img, _ := random.Image(300, 1)
	c, _ := OpenCache(t.TempDir())
	if err := c.Put("test/d:1", img); err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(t.TempDir(), "d.tar")
	if err := c.Export("test/d:1", docker, DockerArchive); err != nil {
		t.Fatal(err)
	}
	// Rewrite it with an oci-layout and an index.json naming nothing.
	src, err := os.ReadFile(docker)
	if err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "both.tar")
	f, _ := os.Create(both)
	tw := tar.NewWriter(f)
	tr := tar.NewReader(strings.NewReader(string(src)))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		tw.WriteHeader(h)
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"oci-layout": `{"imageLayoutVersion":"1.0.0"}`,
		"index.json": `{"schemaVersion":2,"manifests":[]}`,
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		io.WriteString(tw, data)
	}
	tw.Close()
	f.Close()

	c2, _ := OpenCache(t.TempDir())
	names, err := c2.Import(both, "", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("imported %q", names)
	}
	wantCached(t, c2, "test/d:1", img)
}
