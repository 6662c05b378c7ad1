package initrd

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/keel-os/keel/pkg/kmod"
)

// maxModuleSize bounds the size of one module read into memory.
const maxModuleSize = 256 << 20

// BuildModuleIndex reads a kernel.tar (lib/modules/<release>/..., or under
// usr/) and returns the module index PID 1 loads modules with, in the
// format of kmod.WriteIndex: for every module of every release, its path,
// dependencies, softdeps and aliases, read from its .modinfo. Modules
// compressed with xz, zstd or gzip are decompressed to be read; a module
// whose .modinfo cannot be read is indexed by name and path only.
func BuildModuleIndex(r io.Reader) ([]byte, error) {
	type release struct {
		modules []*kmod.Module
		builtin []string
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
			return nil, fmt.Errorf("module index: read %s: %w", ModulesFile, err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		name, err := cleanName(h.Name)
		if err != nil {
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
		case p == "modules.builtin":
			sc := bufio.NewScanner(tr)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); line != "" {
					get(rel).builtin = append(get(rel).builtin, kmod.NormalizeName(line))
				}
			}
			if err := sc.Err(); err != nil {
				return nil, fmt.Errorf("module index: %s: %w", name, err)
			}
		case kmod.IsModuleFile(p):
			if h.Size > maxModuleSize {
				return nil, fmt.Errorf("module index: %s: %d bytes is too large for a module", name, h.Size)
			}
			data, err := readModule(p, tr)
			if err != nil {
				return nil, fmt.Errorf("module index: %s: %w", name, err)
			}
			// A file that is not a readable module is still indexed by name
			// and path: loading it by name then fails in the kernel, with
			// the kernel's reason, rather than failing the build here.
			info, err := kmod.ReadInfo(bytes.NewReader(data))
			if err != nil {
				info = &kmod.Info{}
			}
			get(rel).modules = append(get(rel).modules, &kmod.Module{Name: kmod.NormalizeName(p), Path: p, Size: h.Size, Info: info})
		}
	}
	names := make([]string, 0, len(releases))
	for n := range releases {
		names = append(names, n)
	}
	sort.Strings(names)
	ix := &kmod.Index{Version: kmod.IndexVersion, Kernels: []kmod.KernelModules{}}
	for _, n := range names {
		r := releases[n]
		ix.Kernels = append(ix.Kernels, kmod.KernelIndex(n, kmod.NewTree(r.modules, r.builtin)))
	}
	var buf bytes.Buffer
	if err := kmod.WriteIndex(&buf, ix); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
