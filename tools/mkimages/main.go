// Command mkimages makes keel's base images without Docker: the kernel
// from Debian's cloud kernel package, keel/init from keel's PID 1,
// containerd built from the Go module proxy and crun from Debian's source
// tarball (runc, built too, stays in the tools cache), a busybox image,
// the boot loaders of the disk formats from Debian's systemd-boot-efi,
// isolinux and syslinux-common, all stored in keel's local image cache. Versions come from
// tools/versions.env.
//
//	go run ./tools/mkimages [-versions tools/versions.env] [-only kernel,init,busybox,boot]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/oci"
)

// images are what mkimages can make, in the order it makes them.
var images = []struct {
	name string
	make func(context.Context, *builder) error
}{
	{"kernel", makeKernel},
	{"init", makeInit},
	{"busybox", makeBusybox},
	{"boot", makeBoot},
	{"bench-tools", makeBenchTools},
}

func main() {
	versionsFile := flag.String("versions", "tools/versions.env", "file of pinned versions")
	only := flag.String("only", "kernel,init,busybox,boot", "comma-separated images to make")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *versionsFile, *only); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, versionsFile, only string) error {
	start := time.Now()
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for n := range want {
		if !knownImage(n) {
			return fmt.Errorf("-only: unknown image %q (want kernel, init, busybox or boot)", n)
		}
	}

	v, err := readVersions(versionsFile)
	if err != nil {
		return err
	}
	mtime, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	src, err := moduleRoot()
	if err != nil {
		return err
	}
	cacheDir := oci.DefaultCacheDir()
	cache, err := oci.OpenCache(cacheDir)
	if err != nil {
		return err
	}
	// Scratch space lives in the cache directory, not /tmp: the full
	// kernel's module tree is unpacked there, and /tmp may be RAM.
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(cacheDir, "mkimages-")
	if err != nil {
		return fmt.Errorf("make scratch directory: %w", err)
	}
	defer os.RemoveAll(work)

	b := &builder{
		versions: v, versionsFile: versionsFile, cache: cache, cacheDir: cacheDir,
		work: work, src: src, mtime: mtime,
	}
	for _, img := range images {
		if !want[img.name] {
			continue
		}
		if err := img.make(ctx, b); err != nil {
			return fmt.Errorf("%s: %w", img.name, err)
		}
	}
	fmt.Printf("done in %s (cache %s)\n", since(start), cacheDir)
	return nil
}

func knownImage(name string) bool {
	for _, img := range images {
		if img.name == name {
			return true
		}
	}
	return false
}

// builder holds what every image recipe needs.
type builder struct {
	versions     *versions
	versionsFile string
	cache        *oci.Cache
	cacheDir     string
	work         string    // scratch directory of this run
	src          string    // keel's module root, where ./cmd/init is
	mtime        time.Time // every time stamp in every image
	bb           *busybox  // unpacked on first use
	layers       int       // layer files written, for unique names
}

// downloadsDir keeps the .deb files apt fetched, one per package version.
func (b *builder) downloadsDir() string { return filepath.Join(b.cacheDir, "downloads") }

// toolsDir keeps built tool binaries, one directory per pinned version.
func (b *builder) toolsDir() string { return filepath.Join(b.cacheDir, "tools") }

// step prints one line of progress.
func (b *builder) step(image, format string, args ...any) {
	fmt.Printf("%s: %s\n", image, fmt.Sprintf(format, args...))
}

// putImage makes a one-layer image of t with config cfg and stores it in
// the cache under ref.
func (b *builder) putImage(ref string, t *tree, cfg v1.Config) (v1.Hash, layerStats, error) {
	b.layers++
	layer, st, err := t.writeLayer(filepath.Join(b.work, fmt.Sprintf("layer-%d.tar.gz", b.layers)), b.mtime)
	if err != nil {
		return v1.Hash{}, st, err
	}
	img, err := newImage(layer, cfg, b.mtime, "keel tools/mkimages")
	if err != nil {
		return v1.Hash{}, st, err
	}
	if err := b.cache.Put(ref, img); err != nil {
		return v1.Hash{}, st, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, st, fmt.Errorf("image digest: %w", err)
	}
	return digest, st, nil
}

// sourceDateEpoch is the time stamp of everything mkimages makes:
// $SOURCE_DATE_EPOCH (the reproducible-builds convention) or 1970.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// moduleRoot finds keel's source tree from the working directory up, for
// building ./cmd/init.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(gomod), "module github.com/keel-os/keel\n") {
			return dir, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find keel's source tree: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run mkimages inside keel's source tree (no go.mod of github.com/keel-os/keel found)")
		}
		dir = parent
	}
}

func fetchedOrCached(cached bool) string {
	if cached {
		return "cached"
	}
	return "downloaded"
}

// megabytes formats n bytes in MB (10^6 bytes), the unit of the report.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// since is the time since start, rounded for people.
func since(start time.Time) string { return time.Since(start).Round(100 * time.Millisecond).String() }
