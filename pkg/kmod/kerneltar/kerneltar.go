// Package kerneltar reads the tar of kernel modules a kernel image carries
// (kernel.tar: lib/modules/<release>/...) for the build: the module index
// PID 1 loads modules with, and depmod's files for the guest's own
// modprobe. It is apart from pkg/kmod, which PID 1 imports, because it
// needs the decompressors for .ko.xz and .ko.zst modules.
package kerneltar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/keel-os/keel/pkg/kmod"
)

// maxModuleSize bounds the size of one module read into memory.
const maxModuleSize = 256 << 20

// Release is the module tree of one kernel release of the tar.
type Release struct {
	// Name is the directory under lib/modules, e.g. "6.1.0-56-cloud-amd64".
	Name string
	Tree *kmod.Tree
}

// Read reads a kernel.tar (lib/modules/<release>/..., or under usr/) and
// returns the module tree of every release it holds, sorted by name: each
// module's path, its .modinfo and the symbols it exports, the built-in
// modules (modules.builtin) and the module order (modules.order). Modules
// compressed with xz, zstd or gzip are decompressed to be read; a module
// whose .modinfo cannot be read is kept by name and path only.
func Read(r io.Reader) ([]Release, error) {
	type release struct {
		modules        []*kmod.Module
		builtin, order []string
	}
	releases := map[string]*release{}
	get := func(name string) *release {
		if releases[name] == nil {
			releases[name] = &release{}
		}
		return releases[name]
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read modules tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		name, ok := cleanName(h.Name)
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "usr/")
		rest, ok := strings.CutPrefix(name, "lib/modules/")
		if !ok {
			continue
		}
		rel, p, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		switch {
		case p == "modules.builtin" || p == "modules.order":
			lines, err := readLines(tr)
			if err != nil {
				return nil, fmt.Errorf("modules tar: %s: %w", name, err)
			}
			if p == "modules.builtin" {
				for _, l := range lines {
					get(rel).builtin = append(get(rel).builtin, kmod.NormalizeName(l))
				}
			} else {
				get(rel).order = lines
			}
		case kmod.IsModuleFile(p):
			if h.Size > maxModuleSize {
				return nil, fmt.Errorf("modules tar: %s: %d bytes is too large for a module", name, h.Size)
			}
			data, err := readModule(p, tr)
			if err != nil {
				return nil, fmt.Errorf("modules tar: %s: %w", name, err)
			}
			// A file that is not a readable module is still indexed by name
			// and path: loading it by name then fails in the kernel, with
			// the kernel's reason, rather than failing the build here.
			// So is one whose symbol table cannot be read: it just
			// exports nothing in modules.symbols.
			info, err := kmod.ReadInfo(bytes.NewReader(data))
			if err != nil {
				info = &kmod.Info{}
			} else {
				info.Exports, _ = kmod.ReadExports(bytes.NewReader(data))
			}
			get(rel).modules = append(get(rel).modules, &kmod.Module{Name: kmod.NormalizeName(p), Path: p, Size: h.Size, Info: info})
		}
	}
	names := make([]string, 0, len(releases))
	for n := range releases {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Release, 0, len(names))
	for _, n := range names {
		r := releases[n]
		t := kmod.NewTree(r.modules, r.builtin)
		t.SetOrder(r.order)
		out = append(out, Release{Name: n, Tree: t})
	}
	return out, nil
}

// Index is the module index of releases, as PID 1 reads it
// (kmod.ReadIndex), in the format of kmod.WriteIndex.
func Index(releases []Release) ([]byte, error) {
	ix := &kmod.Index{Version: kmod.IndexVersion, Kernels: []kmod.KernelModules{}}
	for _, r := range releases {
		ix.Kernels = append(ix.Kernels, kmod.KernelIndex(r.Name, r.Tree))
	}
	var buf bytes.Buffer
	if err := kmod.WriteIndex(&buf, ix); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GuestFiles reads a kernel.tar and returns what the build adds to the
// guest's root for its modules: the module index at kmod.IndexPath, and
// depmod's files in each release's lib/modules/<release>, which take the
// place of any the tar holds.
func GuestFiles(r io.Reader) ([]kmod.File, error) {
	releases, err := Read(r)
	if err != nil {
		return nil, err
	}
	ix, err := Index(releases)
	if err != nil {
		return nil, err
	}
	files := []kmod.File{{Path: kmod.IndexPath, Data: ix}}
	for _, rel := range releases {
		for _, f := range rel.Tree.DepmodFiles() {
			files = append(files, kmod.File{Path: path.Join("lib/modules", rel.Name, f.Path), Data: f.Data})
		}
	}
	return files, nil
}

// cleanName makes a tar entry name relative to the root ("/x" and "./x"
// are "x"); a name with ".." is not a module tree's and is skipped.
func cleanName(name string) (string, bool) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", false
		}
	}
	return strings.TrimPrefix(path.Clean("/"+name), "/"), true
}

// readLines reads the non-empty lines of r, trimmed.
func readLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// readModule reads a module file, decompressing it by its name.
func readModule(name string, r io.Reader) ([]byte, error) {
	var zr io.Reader = r
	switch {
	case strings.HasSuffix(name, ".ko.xz"):
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		zr = x
	case strings.HasSuffix(name, ".ko.zst"):
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer z.Close()
		zr = z
	case strings.HasSuffix(name, ".ko.gz"):
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		zr = g
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxModuleSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxModuleSize {
		return nil, fmt.Errorf("more than %d bytes decompressed", maxModuleSize)
	}
	return data, nil
}
