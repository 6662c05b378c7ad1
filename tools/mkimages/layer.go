package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// tree is the file tree of a tar archive being put together. Nothing is
// read until the archive is written, and then in sorted order with fixed
// ownership and times, so the same files always give the same bytes.
type tree struct {
	entries map[string]*treeEntry
}

type treeEntry struct {
	hdr tar.Header
	// open gives a regular file's contents; hdr.Size bytes are expected.
	open func() (io.ReadCloser, error)
}

func newTree() *tree { return &tree{entries: map[string]*treeEntry{}} }

// cleanName turns "/usr/bin/x" or "./usr/bin/x" into the form layer tars
// use, "usr/bin/x".
func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" {
		return "", fmt.Errorf("empty path %q", name)
	}
	return n, nil
}

// has reports whether name is in the tree.
func (t *tree) has(name string) bool {
	n, err := cleanName(name)
	return err == nil && t.entries[n] != nil
}

func (t *tree) add(e *treeEntry) error {
	n, err := cleanName(e.hdr.Name)
	if err != nil {
		return err
	}
	if old := t.entries[n]; old != nil {
		// Asking twice for the same directory is fine (parents are added
		// implicitly); anything else is a mistake in the image recipe.
		if old.hdr.Typeflag == tar.TypeDir && e.hdr.Typeflag == tar.TypeDir {
			old.hdr.Mode = e.hdr.Mode
			return nil
		}
		return fmt.Errorf("%s is in the layer twice", n)
	}
	e.hdr.Name = n
	for dir := path.Dir(n); dir != "."; dir = path.Dir(dir) {
		if p := t.entries[dir]; p != nil {
			if p.hdr.Typeflag != tar.TypeDir {
				return fmt.Errorf("%s: parent %s is not a directory", n, dir)
			}
			continue
		}
		t.entries[dir] = &treeEntry{hdr: tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}}
	}
	t.entries[n] = e
	return nil
}

// dir adds a directory.
func (t *tree) dir(name string, mode int64) error {
	return t.add(&treeEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}})
}

// data adds a regular file holding data.
func (t *tree) data(name string, mode int64, data []byte) error {
	return t.add(&treeEntry{
		hdr:  tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))},
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	})
}

// file adds the regular file at src on disk under name. Its size is taken
// now; it is read when the tar is written.
func (t *tree) file(name string, mode int64, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("add %s to layer: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("add %s to layer: %s is not a regular file", name, src)
	}
	return t.add(&treeEntry{
		hdr:  tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: st.Size()},
		open: func() (io.ReadCloser, error) { return os.Open(src) },
	})
}

// symlink adds a symbolic link to target.
func (t *tree) symlink(name, target string) error {
	return t.add(&treeEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}})
}

// hardlink adds a hard link to target, another file of the tree.
func (t *tree) hardlink(name, target string) error {
	tn, err := cleanName(target)
	if err != nil {
		return err
	}
	return t.add(&treeEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: tn}})
}

// writeTar writes the tree as a tar archive in path order (so a directory
// comes before what it holds), every entry owned by 0:0 with mtime. It
// returns the number of bytes of file contents written.
func (t *tree) writeTar(w io.Writer, mtime time.Time) (int64, error) {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	sort.Strings(names)

	tw := tar.NewWriter(w)
	var contents int64
	for _, n := range names {
		e := t.entries[n]
		hdr := e.hdr
		hdr.ModTime = mtime
		hdr.Uid, hdr.Gid = 0, 0
		hdr.Format = tar.FormatPAX
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			// An extractor makes a hard link to a file it has already
			// written, so the target must come first.
			target := t.entries[hdr.Linkname]
			if target == nil || target.hdr.Typeflag != tar.TypeReg || hdr.Linkname > n {
				return 0, fmt.Errorf("hard link %s: target %s is not a file written before it", n, hdr.Linkname)
			}
			// A link is the same inode, so the same mode; say so, as docker
			// does, for readers that take the mode from each entry.
			hdr.Mode = target.hdr.Mode
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return 0, fmt.Errorf("write tar header for %s: %w", n, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyEntry(tw, n, e); err != nil {
			return 0, err
		}
		contents += hdr.Size
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("finish tar: %w", err)
	}
	return contents, nil
}

func copyEntry(tw *tar.Writer, name string, e *treeEntry) error {
	r, err := e.open()
	if err != nil {
		return fmt.Errorf("open %s for the layer: %w", name, err)
	}
	defer r.Close()
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("write %s into tar: %w", name, err)
	}
	if n != e.hdr.Size {
		return fmt.Errorf("write %s into tar: it changed size while being read", name)
	}
	return nil
}

// writeTarFile writes the tree as an uncompressed tar file at dst.
func (t *tree) writeTarFile(dst string, mtime time.Time) (int64, error) {
	f, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	n, err := t.writeTar(f, mtime)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", dst, cerr)
	}
	return n, err
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// layerStats says how big a layer is.
type layerStats struct {
	Contents     int64 // bytes of file contents
	Uncompressed int64 // bytes of the tar
}

// writeLayer writes the tree as a gzipped tar at dst and returns it as an
// OCI layer. Compressing here, once, means go-containerregistry only has
// to hash the file rather than gzip it again for the digest and again for
// the cache. The gzip header has no name and no time, so the bytes depend
// only on the tree.
func (t *tree) writeLayer(dst string, mtime time.Time) (v1.Layer, layerStats, error) {
	var st layerStats
	f, err := os.Create(dst)
	if err != nil {
		return nil, st, fmt.Errorf("create layer file: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return nil, st, err
	}
	cw := &countingWriter{w: zw}
	if st.Contents, err = t.writeTar(cw, mtime); err != nil {
		return nil, st, err
	}
	st.Uncompressed = cw.n
	if err := zw.Close(); err != nil {
		return nil, st, fmt.Errorf("compress layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, st, fmt.Errorf("write layer file %s: %w", dst, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(dst) },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, st, fmt.Errorf("read back layer %s: %w", dst, err)
	}
	return layer, st, nil
}

// newImage makes a linux/amd64 OCI image of one layer, with every time in
// it set to created so that it is reproducible.
func newImage(layer v1.Layer, cfg v1.Config, created time.Time, createdBy string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: createdBy},
	})
	if err != nil {
		return nil, fmt.Errorf("add layer to image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}
