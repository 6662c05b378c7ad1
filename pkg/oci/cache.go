package oci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// RefAnnotation names an image in the cache's index.json, as in any OCI
// image layout.
const RefAnnotation = "org.opencontainers.image.ref.name"

// ErrNotCached is returned by Cache.Image when the cache has no such image.
var ErrNotCached = errors.New("image not in the local cache")

// Cache is keel's local image cache: one OCI image layout in which every
// image is found by its reference name.
type Cache struct {
	Dir  string
	path layout.Path
	// mu guards index.json within this process: the layout package
	// rewrites it in place, so a reader must not overlap a writer. Blobs
	// are content-addressed and safe to write concurrently.
	mu sync.RWMutex
}

// errNoCacheDir is CacheDir's error when the environment names no private
// place for the cache.
var errNoCacheDir = errors.New("no place for the image cache: set KEEL_CACHE or HOME " +
	"(keel does not fall back to a shared directory such as /tmp, where another user could plant the images it builds from)")

// CacheDir is ${KEEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/keel}. With none
// of those set it is an error: every place left is shared with other
// users.
func CacheDir() (string, error) {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d, nil
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "keel"), nil
	}
	return "", errNoCacheDir
}

// DefaultCacheDir is CacheDir, or "" when there is none, which OpenCache
// refuses with CacheDir's error. It is for callers that hand the
// directory straight to OpenCache.
func DefaultCacheDir() string {
	d, err := CacheDir()
	if err != nil {
		return ""
	}
	return d
}

// PrivateDir makes dir (and its missing parents) for the current user
// only, or checks that the existing dir is fit to hold a cache whose
// contents are trusted without further checks (segments of the initrd,
// images): a real directory, not a symlink, owned by the effective uid,
// writable by nobody else. The checks are made on the opened directory,
// not on its name, so nothing can be swapped in between.
func PrivateDir(dir string) error {
	if dir == "" {
		return errNoCacheDir
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create image cache %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create image cache %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("image cache %s: is a symbolic link; point KEEL_CACHE at the real directory: %w", dir, err)
	case errors.Is(err, unix.ENOTDIR):
		if st, lerr := os.Lstat(dir); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("image cache %s: is a symbolic link; point KEEL_CACHE at the real directory: %w", dir, err)
		}
		return fmt.Errorf("image cache %s: is not a directory: %w", dir, err)
	case err != nil:
		return fmt.Errorf("open image cache %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat image cache %s: %w", dir, err)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("image cache %s: owned by uid %d, not by you (uid %d); refusing to trust what another user could change", dir, st.Uid, uid)
	}
	if perm := st.Mode & 0o7777; perm&0o022 != 0 {
		return fmt.Errorf("image cache %s: is writable by group or others (mode %04o); refusing to trust it (chmod go-w %s)", dir, perm, dir)
	}
	return nil
}

// OpenCache opens the image layout under dir/oci, creating it if needed.
// dir must be private (see PrivateDir): it is made so when new, and
// refused otherwise.
func OpenCache(dir string) (*Cache, error) {
	if err := PrivateDir(dir); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "oci")
	if lp, err := layout.FromPath(p); err == nil {
		return &Cache{Dir: dir, path: lp}, nil
	}
	// Create it under the index lock: two builds starting on an empty
	// cache must not write the empty index over each other's images.
	c := &Cache{Dir: dir}
	unlock, err := c.lockIndex(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	lp, err := layout.FromPath(p)
	if err != nil {
		if lp, err = newLayout(p); err != nil {
			return nil, fmt.Errorf("create image cache %s: %w", p, err)
		}
	}
	c.path = lp
	return c, nil
}

// newLayout makes an empty OCI image layout at p, each file written
// atomically: a build killed half-way leaves no torn index.json for the
// next to stumble on.
func newLayout(p string) (layout.Path, error) {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	err := WriteFileAtomic(filepath.Join(p, "oci-layout"), 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, `{"imageLayoutVersion": "1.0.0"}`)
		return err
	})
	if err != nil {
		return "", err
	}
	if err := writeIndex(filepath.Join(p, "index.json"), &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}); err != nil {
		return "", err
	}
	return layout.FromPath(p)
}

// CanonicalRef is the short, familiar form of an image reference under which
// the cache stores it: "keel/init:0.1", "alpine:latest", "127.0.0.1:5000/x:1",
// "repo@sha256:...". Docker Hub's host and "library/" are dropped, and a
// missing tag is "latest".
func CanonicalRef(s string) (string, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	repo := ref.Context()
	r := repo.RepositoryStr()
	if repo.RegistryStr() == name.DefaultRegistry {
		r = strings.TrimPrefix(r, "library/")
	} else {
		r = repo.RegistryStr() + "/" + r
	}
	if d, ok := ref.(name.Digest); ok {
		return r + "@" + d.DigestStr(), nil
	}
	return r + ":" + ref.Identifier(), nil
}

// Put stores img under ref, replacing whatever that name held before.
func (c *Cache) Put(ref string, img v1.Image) error {
	cref, err := CanonicalRef(ref)
	if err != nil {
		return err
	}
	// Blobs first, outside the lock, so that several images can be
	// fetched at once; setRef then names the image in the index.
	if err := c.path.WriteImage(img); err != nil {
		return fmt.Errorf("store %s in cache %s: %w", cref, c.Dir, err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return fmt.Errorf("store %s in cache %s: %w", cref, c.Dir, err)
	}
	return c.setRef(cref, *desc)
}

// Image returns the cached image named ref. A digest reference matches any
// cached image with that manifest digest.
func (c *Cache) Image(ref string) (v1.Image, error) {
	cref, err := CanonicalRef(ref)
	if err != nil {
		return nil, err
	}
	_, im, err := c.index()
	if err != nil {
		return nil, err
	}
	want := func(d v1.Descriptor) bool { return d.Annotations[RefAnnotation] == cref }
	if at := strings.LastIndex(cref, "@"); at >= 0 {
		h, err := v1.NewHash(cref[at+1:])
		if err != nil {
			return nil, fmt.Errorf("invalid digest in %q: %w", ref, err)
		}
		// A digest names either the image's own manifest or, for a
		// multi-platform image, the index it was picked from; Put stores
		// the latter under its name.
		want = func(d v1.Descriptor) bool { return d.Digest == h || d.Annotations[RefAnnotation] == cref }
	}
	for i := len(im.Manifests) - 1; i >= 0; i-- {
		d := im.Manifests[i]
		if want(d) && d.MediaType.IsImage() {
			// Every blob is checked against its digest as it is read, and
			// removed when it does not match, so the next resolve fetches
			// it again.
			img, err := newBlobImage(string(c.path), d, cref, "the cache "+c.Dir, true)
			if err != nil {
				return nil, fmt.Errorf("read cached image %s: %w", cref, err)
			}
			return img, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", cref, ErrNotCached)
}

// index reads index.json under the index lock.
func (c *Cache) index() (v1.ImageIndex, *v1.IndexManifest, error) {
	unlock, err := c.lockIndex(false)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	idx, err := c.path.ImageIndex()
	if err != nil {
		return nil, nil, fmt.Errorf("read image cache %s: %w", c.Dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("read image cache %s: %w", c.Dir, err)
	}
	return idx, im, nil
}

// CachedImage is one entry of the cache listing.
type CachedImage struct {
	Ref    string
	Digest v1.Hash
	Size   int64
}

// List returns the cached images sorted by reference.
func (c *Cache) List() ([]CachedImage, error) {
	_, im, err := c.index()
	if err != nil {
		return nil, err
	}
	var out []CachedImage
	for _, d := range im.Manifests {
		out = append(out, CachedImage{Ref: d.Annotations[RefAnnotation], Digest: d.Digest, Size: d.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}
