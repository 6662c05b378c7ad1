package oci

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Each archive format reads back, through Import and through ImportReader,
// as the same image; the file is 0644.
func TestExportFormatsRoundTrip(t *testing.T) {
	src, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 2)
	// A layer twice: the OCI archive holds its blob once.
	layers, _ := img.Layers()
	img, err = mutate.AppendLayers(img, layers[0])
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture = "linux", "arm64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if err := src.Put("example.com/test/a:1", img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	for _, f := range ArchiveFormats {
		t.Run(string(f), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "a.tar")
			if err := src.Export("example.com/test/a:1", file, f); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, %v; want 0644", file, st.Mode(), err)
			}
			var buf bytes.Buffer
			if err := src.WriteArchive(&buf, "example.com/test/a:1", f); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(file); !bytes.Equal(b, buf.Bytes()) {
				t.Error("the file and the stream differ")
			}
			for i, imp := range []func(*Cache) ([]string, error){
				func(c *Cache) ([]string, error) {
					return c.Import(file, "", v1.Platform{OS: "linux", Architecture: "arm64"})
				},
				func(c *Cache) ([]string, error) {
					return c.ImportReader(bytes.NewReader(buf.Bytes()), "", v1.Platform{OS: "linux", Architecture: "arm64"})
				},
			} {
				dst, err := OpenCache(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				names, err := imp(dst)
				if err != nil {
					t.Fatalf("import %d: %v", i, err)
				}
				if len(names) != 1 || names[0] != "example.com/test/a:1" {
					t.Errorf("import %d: names %q", i, names)
				}
				got, err := dst.Image("example.com/test/a:1")
				if err != nil {
					t.Fatal(err)
				}
				if d, _ := got.Digest(); d != want {
					t.Errorf("import %d: digest %s, want %s", i, d, want)
				}
				if leftovers, _ := filepath.Glob(filepath.Join(dst.Dir, ".import-*")); len(leftovers) > 0 {
					t.Errorf("import %d left %v", i, leftovers)
				}
			}
		})
	}
	if err := src.WriteArchive(io.Discard, "example.com/test/a:1", "zip"); err == nil || !strings.Contains(err.Error(), `unknown archive format "zip"`) {
		t.Errorf("format zip: %v", err)
	}
}

func TestListInfo(t *testing.T) {
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 3)
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture, cf.Variant = "linux", "arm", "v7"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put("test/a:1", img); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListInfo()
	if err != nil || len(list) != 1 {
		t.Fatalf("%v %v", list, err)
	}
	m, _ := img.Manifest()
	raw, _ := img.RawManifest()
	want := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		want += l.Size
	}
	if got := list[0]; got.TotalSize != want || got.Platform != "linux/arm/v7" || got.Ref != "test/a:1" {
		t.Errorf("got %+v, want size %d, platform linux/arm/v7", got, want)
	}
}

// Push sends a cached image to a registry, which then serves it by the
// digest Push returns.
func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 2)
	if err := c.Put("test/a:1", img); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Cache: c}
	pushed, err := r.Push(context.Background(), "test/a:1", host+"/pushed/a:2")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if pushed != host+"/pushed/a@"+d.String() {
		t.Errorf("pushed as %s", pushed)
	}
	ref, _ := name.ParseReference(host+"/pushed/a:2", name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd != d {
		t.Errorf("registry has %s, want %s", gd, d)
	}
	if _, err := r.Push(context.Background(), "test/nothere:1", host+"/x:1"); err == nil {
		t.Error("push of an image not cached worked")
	}
}
