// Package initrd writes keel's boot outputs: the kernel, a compressed newc
// initrd holding the init images, the kernel modules and their index,
// keel's bundle layout and the YAML's files, and the kernel command line.
//
// The initrd is a sequence of segments, each a whole cpio archive
// compressed on its own (gzip, zstd, lz4 legacy or none), preceded by the
// kernel image's uncompressed microcode cpio when the YAML names one:
//
//	[ucode.cpio]                   as is, padded to 4 bytes
//	root segment:
//	  <dirs of the root, sorted>   every directory of the merged root
//	  init, sbin/init, ...         the init images, merged in YAML order
//	  lib/modules/<kver>/...       the kernel image's kernel.tar
//	  dev/console                  char 5,1, 0600, for PID 1's console
//	  etc/keel/modules.json        the module index (pkg/kmod)
//	  <files>                      the YAML's files, over all of the above
//	  containers/<kind>/           the directories holding the bundles
//	one segment per bundle:
//	  containers/onboot/NNN-name/  config.json, runtime.json, rootfs/
//	  containers/onshutdown/NNN-name/
//	  containers/services/name/
//	one segment per image used by several bundles:
//	  containers/images/<hex>/     the image, once, when a bundle of it is
//	                               writable (see sharedimage.go)
//	  containers/<kind>/<bundle>/  each bundle of it
//
// Bundles of the same image share one segment, in which the image's files
// are stored once: hard-linked into each rootfs when every bundle is
// read-only, else in containers/images/<hex>/, which PID 1 overlays on the
// empty rootfs of each writable bundle.
// Segments are cached by what they are made of, so a rebuild after one
// service changed writes one segment. Each rootfs/ lists its directories
// first, sorted, then the rest in layer order. Everything is streamed:
// image layers go straight from the cache into the cpio stream and the
// compressor, so memory stays bounded whatever the images' size. Outputs
// are written atomically and are reproducible byte for byte: entries come
// in a fixed order with one mtime. See docs/initrd.md.
package initrd

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/kmod"
	"github.com/keel-os/keel/pkg/xattrs"
)

// Image is an image with the reference it was named by.
type Image struct {
	Ref   string
	Image v1.Image
}

// Bundle is one container of the booted system: where it goes and what it
// is made of.
type Bundle struct {
	Kind bundle.Kind
	// Dir is the bundle directory's name (bundle.DirName).
	Dir     string
	Image   Image
	Config  *specs.Spec
	Runtime *bundle.Runtime
}

// Path is the bundle's directory inside the initrd, without a leading "/".
func (b Bundle) Path() string { return path.Join(b.Kind.Dir(), b.Dir)[1:] }

// Contents is what goes into an initrd.
type Contents struct {
	// Init images are merged, in order, into the root.
	Init []Image
	// Modules, when set, is the kernel image's kernel.tar, merged into the
	// root after the init images.
	Modules *Layer
	Bundles []Bundle
	// ModuleFiles are the files made from Modules (kerneltar.GuestFiles):
	// the module index at kmod.IndexPath and depmod's files, written
	// over the tar's.
	ModuleFiles []kmod.File
	// Files are written last into the root, over anything else.
	Files []config.File
	// Overlays says that the init images' PID 1 mounts a writable
	// bundle's rootfs as an overlay of the image its runtime.json names as
	// rootfsLower (see InitFeatureOverlays), so that an image several
	// writable bundles use is stored once. Without it each gets a copy.
	Overlays bool
}

// WriteCPIO writes the uncompressed initrd to w, with every mtime set to
// mtime: its segments one after the other, each a whole cpio archive.
func WriteCPIO(w io.Writer, c Contents, mtime int64) error {
	segs, err := c.segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if _, err := s.write(w, mtime); err != nil {
			return err
		}
	}
	return nil
}

// writeRoot writes the root: the init images, the modules, /dev/console,
// the module index and the files merged into one tree, and the directories
// that hold the bundles.
func writeRoot(a *Archive, c Contents) error {
	var root []Layer
	for _, img := range c.Init {
		ls, err := ImageLayers(img.Ref, img.Image)
		if err != nil {
			return err
		}
		root = append(root, ls...)
	}
	if c.Modules != nil {
		root = append(root, *c.Modules)
	}
	base, err := baseLayer()
	if err != nil {
		return err
	}
	root = append(root, base)
	if len(c.ModuleFiles) > 0 {
		var hs []*tar.Header
		data := map[string][]byte{}
		for _, f := range c.ModuleFiles {
			hs = append(hs, &tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.Data))})
			data[f.Path] = f.Data
		}
		idx, err := memoryLayer("module index", hs, data)
		if err != nil {
			return err
		}
		root = append(root, idx)
	}
	if len(c.Files) > 0 {
		files, err := filesLayer(c.Files)
		if err != nil {
			return err
		}
		root = append(root, files)
	}
	if err := Unpack(a, "", root); err != nil {
		return fmt.Errorf("write initrd root: %w", err)
	}
	for _, d := range bundleDirs(c.Bundles, c.Overlays) {
		if err := a.MkdirAll(d); err != nil {
			return err
		}
	}
	return nil
}

// bundleDirs are the directories that hold the bundles
// (containers/onboot, ...), parents first.
func bundleDirs(bs []Bundle, overlays bool) []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range bs {
		for _, d := range []string{parent(parent(b.Path())), parent(b.Path())} {
			if d != "" && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	if sharesImages(bs, overlays) {
		out = append(out, bundle.ImagesDir[1:])
	}
	return out
}

// bundleFiles are a bundle's config.json and runtime.json; lower, when
// set, is the shared image its rootfs overlays (Runtime.RootfsLower).
func bundleFiles(b Bundle, lower string) (cfg, runtime []byte, err error) {
	dir := b.Path()
	cfg, err = bundle.MarshalConfig(b.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s/%s: %w", dir, bundle.ConfigFile, err)
	}
	var rt bundle.Runtime
	if b.Runtime != nil {
		rt = *b.Runtime
	}
	rt.RootfsLower = lower
	runtime, err = bundle.MarshalRuntime(&rt)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s/%s: %w", dir, bundle.RuntimeFile, err)
	}
	return cfg, runtime, nil
}

// bundleData is a bundle with its config.json and runtime.json.
type bundleData struct {
	Bundle
	cfg, runtime []byte
}

// writeBundles writes each bundle's config.json, runtime.json and the
// image's filesystem as rootfs/. The directories above the bundles' own
// are in the root segment. Several bundles are of one image (see
// sharedimage.go): its regular files are stored once, in lower when that
// is set, else in the first rootfs, and hard-linked into every other
// read-only rootfs; a writable bundle's rootfs is then an empty mount
// point for PID 1's overlay of lower. A read-only rootfs gets a directory
// for each mount of its spec that its image lacks, as runc cannot make one
// there.
func writeBundles(a *Archive, bs []bundleData, lower string) error {
	var prefixes, mountpoints []string
	if lower != "" {
		a.dirWritten(parent(lower))
		prefixes = append(prefixes, lower)
	}
	for _, b := range bs {
		if readonly(b.Bundle) {
			for _, m := range b.Config.Mounts {
				mountpoints = append(mountpoints, m.Destination)
			}
		}
		dir := b.Path()
		a.dirWritten(parent(dir))
		if err := a.MkdirAll(dir); err != nil {
			return err
		}
		if err := a.WriteFile(path.Join(dir, bundle.ConfigFile), 0o644, b.cfg); err != nil {
			return err
		}
		if err := a.WriteFile(path.Join(dir, bundle.RuntimeFile), 0o644, b.runtime); err != nil {
			return err
		}
		rootfs := path.Join(dir, bundle.RootfsDir)
		if lower != "" && !readonly(b.Bundle) {
			if err := a.MkdirAll(rootfs); err != nil {
				return err
			}
			continue
		}
		prefixes = append(prefixes, rootfs)
	}
	layers, err := ImageLayers(bs[0].Image.Ref, bs[0].Image.Image)
	if err != nil {
		return err
	}
	if err := UnpackShared(a, prefixes, layers, mountpoints); err != nil {
		return fmt.Errorf("write bundle %s: %w", bs[0].Path(), err)
	}
	return nil
}

// baseLayer is what the kernel needs before PID 1 runs: /dev/console, so
// that init starts with its stdin, stdout and stderr on the console; and
// the directory of the xattrs manifests, always, since the bundles'
// segments (cached apart from the root's) put theirs there.
func baseLayer() (Layer, error) {
	return memoryLayer("keel base", []*tar.Header{
		{Name: "dev", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1},
		{Name: xattrs.Dir, Typeflag: tar.TypeDir, Mode: 0o755},
	}, nil)
}

// filesLayer turns the YAML's files (config.Config.ResolveFiles) into a
// layer, owned by their resolved uid and gid.
func filesLayer(files []config.File) (Layer, error) {
	var hs []*tar.Header
	data := map[string][]byte{}
	for _, f := range files {
		h := &tar.Header{Name: f.Path, Mode: int64(unixPerm(f)), Uid: int(f.UID.Num), Gid: int(f.GID.Num)}
		switch f.Kind {
		case config.Directory:
			h.Typeflag = tar.TypeDir
		case config.Symlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Target
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Contents))
			data[f.Path] = []byte(f.Contents)
		}
		hs = append(hs, h)
	}
	return memoryLayer("files", hs, data)
}

// unixPerm is a file's permission bits as a Unix mode.
func unixPerm(f config.File) uint32 {
	m := uint32(f.Mode.Perm())
	if f.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if f.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// memoryLayer is a small layer made here rather than read from an image.
func memoryLayer(name string, hs []*tar.Header, data map[string][]byte) (Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return Layer{}, fmt.Errorf("make %s layer: %s: %w", name, h.Name, err)
		}
		if _, err := tw.Write(data[h.Name]); err != nil {
			return Layer{}, fmt.Errorf("make %s layer: %s: %w", name, h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Layer{}, fmt.Errorf("make %s layer: %w", name, err)
	}
	b := buf.Bytes()
	return Layer{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}, nil
}
