// Command kerneltree takes a kernel image (LinuxKit layout: /kernel and
// /kernel.tar) out of keel's local image cache and writes, for the tests
// that read a real kernel:
//
//	OUT/kernel       the image's kernel (bzImage) as it is
//	OUT/kernel.tar   the image's kernel.tar as it is
//	OUT/modules/     the one lib/modules/<release>/ tree in it, unpacked
//	OUT/release      <release>, one line
//
// OUT is replaced as a whole, so a stale tree never survives a new image.
// `make test-go` runs it after `make images`.
//
//	go run ./tools/kerneltree -ref keel/kernel:6.1.0-56 -out out/test-kernel
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/keel-os/keel/pkg/oci"
)

func main() {
	ref := flag.String("ref", "", "kernel image in the cache, e.g. keel/kernel:6.1.0-56")
	out := flag.String("out", "", "directory to write kernel.tar, modules/ and release into (replaced)")
	flag.Parse()
	if *ref == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("kerneltree: ")
	if err := run(oci.DefaultCacheDir(), *ref, *out); err != nil {
		log.Fatal(err)
	}
}

func run(cacheDir, ref, out string) error {
	cache, err := oci.OpenCache(cacheDir)
	if err != nil {
		return err
	}
	img, err := cache.Image(ref)
	if err != nil {
		return fmt.Errorf("%w (run `make images`)", err)
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".kerneltree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	kernelTar := filepath.Join(tmp, "kernel.tar")
	if err := extractFile(mutate.Extract(img), "kernel.tar", kernelTar); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	if err := extractFile(mutate.Extract(img), "kernel", filepath.Join(tmp, "kernel")); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	release, err := unpackModules(kernelTar, filepath.Join(tmp, "modules"))
	if err != nil {
		return fmt.Errorf("%s: kernel.tar: %w", ref, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "release"), []byte(release+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("%s: %s, kernel, kernel.tar and modules/ in %s\n", ref, release, out)
	return nil
}

// extractFile copies the regular file name out of the image's flattened
// filesystem rc into dst.
func extractFile(rc io.ReadCloser, name, dst string) error {
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("no /%s in the image", name)
		}
		if err != nil {
			return fmt.Errorf("read image filesystem: %w", err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "/")) != name {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("/%s is not a regular file (type %q)", name, h.Typeflag)
		}
		return writeFile(dst, tr, 0o644)
	}
}

// unpackModules unpacks the entries under lib/modules/<release>/ of the
// tar at src into dst and returns <release>. It fails on more than one
// release, on entries outside lib/modules and on anything but directories
// and regular files.
func unpackModules(src, dst string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := os.Mkdir(dst, 0o755); err != nil {
		return "", err
	}
	release := ""
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "lib" || name == "lib/modules" {
			continue
		}
		rest, ok := strings.CutPrefix(name, "lib/modules/")
		if !ok {
			return "", fmt.Errorf("%s: not under lib/modules/", h.Name)
		}
		rel, sub, _ := strings.Cut(rest, "/")
		if release == "" {
			release = rel
		} else if rel != release {
			return "", fmt.Errorf("two releases: %s and %s", release, rel)
		}
		if sub == "" {
			continue
		}
		if !filepath.IsLocal(sub) {
			return "", fmt.Errorf("%s: path leaves the tree", h.Name)
		}
		p := filepath.Join(dst, filepath.FromSlash(sub))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			if err := writeFile(p, tr, 0o644); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("%s: unexpected entry type %q", h.Name, h.Typeflag)
		}
	}
	if release == "" {
		return "", errors.New("no lib/modules/<release>/")
	}
	return release, nil
}

func writeFile(dst string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return f.Close()
}
