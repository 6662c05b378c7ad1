package initrd

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// gzipBlockSize is the unit of parallel compression; changing it changes
// the initrd's bytes.
const gzipBlockSize = 1 << 20

// Paths of the kernel image's files, LinuxKit's layout: the kernel itself
// and a tar of its modules (lib/modules/<version>/...).
const (
	KernelFile  = "kernel"
	ModulesFile = "kernel.tar"
)

// Outputs names the files of one build: NAME-kernel, NAME-initrd.img and
// NAME-cmdline in Dir.
type Outputs struct {
	Dir  string
	Name string
}

func (o Outputs) Kernel() string  { return filepath.Join(o.Dir, o.Name+"-kernel") }
func (o Outputs) Initrd() string  { return filepath.Join(o.Dir, o.Name+"-initrd.img") }
func (o Outputs) Cmdline() string { return filepath.Join(o.Dir, o.Name+"-cmdline") }

// Build is everything the outputs are made from.
type Build struct {
	Kernel  Image
	Cmdline string
	// Contents of the initrd; the kernel's modules are added to it.
	Contents Contents
	// Mtime of every initrd entry, in seconds since the epoch.
	Mtime int64
}

// Write writes the three outputs, each atomically: a reader never sees a
// half-written file, and a failed build leaves the previous one in place.
func Write(o Outputs, b Build) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	// kernel.tar is read twice by Unpack, so it is kept in a temporary file
	// next to the outputs for the length of the build.
	modules, err := os.CreateTemp(o.Dir, ".keel-modules-*.tar")
	if err != nil {
		return fmt.Errorf("create temporary modules file: %w", err)
	}
	defer os.Remove(modules.Name())
	defer modules.Close()

	var hasModules bool
	err = writeAtomic(o.Kernel(), 0o644, func(w io.Writer) error {
		var err error
		hasModules, err = splitKernel(b.Kernel, w, modules)
		return err
	})
	if err != nil {
		return err
	}
	c := b.Contents
	if hasModules {
		name := modules.Name()
		c.Modules = &Layer{
			Name: b.Kernel.Ref + " " + ModulesFile,
			Open: func() (io.ReadCloser, error) { return os.Open(name) },
		}
	}
	err = writeAtomic(o.Initrd(), 0o644, func(w io.Writer) error {
		return compress(w, func(zw io.Writer) error { return WriteCPIO(zw, c, b.Mtime) })
	})
	if err != nil {
		return err
	}
	return writeAtomic(o.Cmdline(), 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, b.Cmdline+"\n")
		return err
	})
}

// splitKernel copies the kernel image's /kernel to kernel and its
// /kernel.tar, if any, to modules.
func splitKernel(img Image, kernel, modules io.Writer) (hasModules bool, err error) {
	// mutate.Extract flattens the layers, whiteouts applied; only two
	// files are wanted, so its order does not matter here.
	rc := mutate.Extract(img.Image)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hasKernel bool
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("read kernel image %s: %w", img.Ref, err)
		}
		name, err := cleanName(h.Name)
		if err != nil || h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		switch name {
		case KernelFile:
			hasKernel = true
			if _, err := io.Copy(kernel, tr); err != nil {
				return false, fmt.Errorf("copy /%s of %s: %w", KernelFile, img.Ref, err)
			}
		case ModulesFile:
			hasModules = true
			if _, err := io.Copy(modules, tr); err != nil {
				return false, fmt.Errorf("copy /%s of %s: %w", ModulesFile, img.Ref, err)
			}
		}
	}
	if !hasKernel {
		return false, fmt.Errorf("kernel image %s has no /%s", img.Ref, KernelFile)
	}
	return hasModules, nil
}

// writeAtomic writes path through fill into a temporary file in the same
// directory, then renames it into place.
func writeAtomic(path string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Mtime is the time stamped on every initrd entry: $SOURCE_DATE_EPOCH
// when set (the reproducible-builds convention), else the epoch itself.
func Mtime() (int64, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	t, err := strconv.ParseInt(s, 10, 64)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return t, nil
}
