package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/keel-os/keel/pkg/progress"
)

// DefaultPlatform is the platform keel builds for.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Resolver finds images: in its layouts first, then in the local cache,
// otherwise in their registry, storing what it finds in the cache so that
// the next build needs neither the layouts nor the network. It is safe for
// concurrent use.
type Resolver struct {
	Cache *Cache
	// Layouts are OCI image layout directories searched, in order, before
	// the cache (keel build --layout).
	Layouts []*Layout
	// Keychain authenticates to registries; nil is authn.DefaultKeychain
	// (docker's config.json and credential helpers).
	Keychain authn.Keychain
	// Platform picks the image out of a multi-platform index; the zero
	// value is DefaultPlatform.
	Platform v1.Platform
	// Progress, when not nil, gets one line per image pulled. Lines are
	// written whole, even when images are resolved concurrently.
	Progress io.Writer
	// Tasks, when not nil, shows each pull as it goes (bytes of layers
	// fetched, with a rate) instead of Progress's "pull" line.
	Tasks *progress.Display
	// Timeouts bound every request to a registry; zero fields are
	// DefaultRegistryTimeouts. Set before the first pull.
	Timeouts RegistryTimeouts

	progressMu sync.Mutex
	// transport is made once, so that pulls share connections.
	transport     http.RoundTripper
	transportOnce sync.Once
}

// roundTripper is the HTTP transport for registries, with r's timeouts.
func (r *Resolver) roundTripper() http.RoundTripper {
	r.transportOnce.Do(func() { r.transport = newTimeoutTransport(r.Timeouts) })
	return r.transport
}

func (r *Resolver) logf(format string, args ...any) {
	if r.Progress == nil {
		return
	}
	r.progressMu.Lock()
	defer r.progressMu.Unlock()
	fmt.Fprintf(r.Progress, format, args...)
}

// Image returns the image named ref, from the cache or pulled into it.
// The image returned always reads its blobs from the cache.
func (r *Resolver) Image(ctx context.Context, ref string) (v1.Image, error) {
	if img, ok, err := r.fromLayouts(ref); ok || err != nil {
		return img, err
	}
	img, err := r.Cache.Image(ref)
	if errors.Is(err, ErrNotCached) {
		if err := r.Pull(ctx, ref); err != nil {
			return nil, err
		}
		return r.Cache.Image(ref)
	}
	if err != nil {
		return nil, err
	}
	// The blobs first: a corrupt config cannot say its platform.
	img, err = r.cachedImage(img, ref, func() error { return r.Pull(ctx, ref) })
	if err != nil {
		return nil, err
	}
	if checkPlatform(img, r.platform()) != nil {
		// Cached for another architecture: fetch this one (it replaces
		// the other under the name).
		if err := r.Pull(ctx, ref); err != nil {
			return nil, err
		}
		return r.Cache.Image(ref)
	}
	return img, nil
}

// Refresh makes the cache hold the newest ref: from a layout that has it,
// or pulled from its registry (keel build --pull). keel's own base images
// (LocalNamespace) have no registry: the cache's copy is the newest.
func (r *Resolver) Refresh(ctx context.Context, ref string) error {
	if _, ok, err := r.fromLayouts(ref); ok || err != nil {
		return err
	}
	if nref, err := parseRemoteRef(ref); err == nil && isLocalImage(nref) {
		if img, err := r.Cache.Image(ref); err == nil && checkPlatform(img, r.platform()) == nil {
			r.logf("image %s: made by `make images`, kept from the cache\n", ref)
			return nil
		}
	}
	return r.Pull(ctx, ref)
}

// LocalNamespace is the namespace of keel's own base images (keel/kernel,
// keel/init, keel/busybox, keel/boot), which `make images` makes into the
// local cache. On Docker Hub, keel/ belongs to someone else: a missing
// base image must never be fetched from there instead.
const LocalNamespace = "keel/"

// ErrLocalImage is returned for a pull of one of keel's base images from
// Docker Hub.
var ErrLocalImage = errors.New("keel's base images are made by `make images` into the local cache, never pulled from Docker Hub")

// isLocalImage reports whether ref names one of keel's base images: the
// LocalNamespace of the default registry (docker.io), which is where a
// name without a registry points.
func isLocalImage(ref name.Reference) bool {
	return ref.Context().RegistryStr() == name.DefaultRegistry &&
		strings.HasPrefix(ref.Context().RepositoryStr(), LocalNamespace)
}

// localImageError says that ref, one of keel's base images, is missing
// from the cache, or is there for another platform only, and how to make
// it.
func (r *Resolver) localImageError(ref string) error {
	want := r.platform()
	if img, err := r.Cache.Image(ref); err == nil {
		if cf, err := img.ConfigFile(); err == nil && checkPlatform(img, want) != nil {
			return fmt.Errorf("no %s for %s/%s: the cache %s has it for %s/%s only, and %w",
				ref, want.OS, want.Architecture, r.Cache.Dir, cf.OS, cf.Architecture, ErrLocalImage)
		}
	}
	return fmt.Errorf("%s is not in the cache %s, and %w: run `make images` (with KEEL_CACHE=%s, if that is the cache you build with)",
		ref, r.Cache.Dir, ErrLocalImage, r.Cache.Dir)
}

// Pull fetches ref from its registry into the cache, whether or not the
// cache already has it. Blobs the cache holds are not fetched again.
// keel's own base images (LocalNamespace) are refused: they are made, not
// pulled.
func (r *Resolver) Pull(ctx context.Context, ref string) error {
	nref, err := parseRemoteRef(ref)
	if err != nil {
		return err
	}
	if isLocalImage(nref) {
		return r.localImageError(ref)
	}
	platform := r.platform()
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	task := r.startPull(ref)
	defer task.Abandon() // a failed pull leaves no summary: its error says why
	img, err := remote.Image(nref,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(platform),
		remote.WithTransport(r.roundTripper()))
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("pull %s: image not found in registry %s: %w", ref, nref.Context().RegistryStr(), err)
		}
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := checkPlatform(img, platform); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	img, counted := watchPull(img, task)
	if err := r.Cache.Put(ref, img); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	task.End(counted.note())
	return nil
}

// parseRemoteRef parses ref for the network. A registry on a loopback
// address (a local or test registry) is spoken to over plain HTTP.
func parseRemoteRef(ref string) (name.Reference, error) {
	nref, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	if isLoopback(nref.Context().RegistryStr()) {
		if nref, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
		}
	}
	return nref, nil
}

func isLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPlatform refuses a single-platform image built for another
// platform; an image that does not say (many hand-made ones) is accepted.
func checkPlatform(img v1.Image, want v1.Platform) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read image config: %w", err)
	}
	if cf.OS != "" && cf.OS != want.OS || cf.Architecture != "" && cf.Architecture != want.Architecture {
		return fmt.Errorf("image is for %s/%s, want %s/%s", cf.OS, cf.Architecture, want.OS, want.Architecture)
	}
	return nil
}

func (r *Resolver) platform() v1.Platform {
	if r.Platform.OS == "" {
		return DefaultPlatform
	}
	return r.Platform
}
