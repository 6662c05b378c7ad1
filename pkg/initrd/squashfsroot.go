package initrd

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
	"github.com/keel-os/keel/pkg/kmod"
)

// The kernel+squashfs format: the kernel; a small initrd with PID 1 and
// the modules it needs to reach the disk (bundle.SquashfsModules); and a
// GPT disk whose one partition holds the whole tree (everything the
// initrd of kernel+initrd holds) as squashfs. The system's bytes stay on
// the disk and are paged in as used, instead of filling the guest's RAM.

// Sector and alignment of the squashfs disk: the partition starts at
// 1 MiB, and 1 MiB is left at the end for the backup GPT.
const (
	diskSector = 512
	diskAlign  = 1 << 20
)

// WriteSquashfsDisk writes the tree of c as a squashfs image in the only
// partition of a GPT disk at p, and returns the partition's name, by
// which PID 1 finds it. The disk GUID, the partition's GUID and its name
// derive from the image's digest, so the disk is reproducible. tmp is a
// directory for the image on its own.
func WriteSquashfsDisk(p, tmp string, c Contents, mtime int64) (partName string, err error) {
	img, err := os.CreateTemp(tmp, "root-*.squashfs")
	if err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	img.Close()
	defer os.Remove(img.Name())
	if err := WriteSquashfs(img.Name(), c, mtime); err != nil {
		return "", err
	}
	in, err := os.Open(img.Name())
	if err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	defer in.Close()
	h := sha256.New()
	size, err := io.Copy(h, in)
	if err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	sum := h.Sum(nil)
	partName = bundle.SquashfsPartName(hex.EncodeToString(sum))
	partSize := (size + diskAlign - 1) / diskAlign * diskAlign
	diskSize := diskAlign + partSize + diskAlign

	out, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	defer out.Close()
	if err := out.Truncate(diskSize); err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	table := &gpt.Table{
		LogicalSectorSize:  diskSector,
		PhysicalSectorSize: diskSector,
		ProtectiveMBR:      true,
		GUID:               guidOf(sum[16:32]),
		Partitions: []*gpt.Partition{{
			Index: 1,
			Start: diskAlign / diskSector,
			End:   uint64((diskAlign+partSize)/diskSector - 1),
			Type:  gpt.LinuxFilesystem,
			Name:  partName,
			GUID:  guidOf(sum[:16]),
		}},
	}
	w, err := file.New(out, false).Writable()
	if err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	if err := table.Write(w, diskSize); err != nil {
		return "", fmt.Errorf("squashfs disk: partition table: %w", err)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	if _, err := io.Copy(io.NewOffsetWriter(out, diskAlign), in); err != nil {
		return "", fmt.Errorf("squashfs disk: copy the image: %w", err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("squashfs disk: %w", err)
	}
	return partName, nil
}

// guidOf makes a version 4 GUID of 16 bytes of a digest: random-looking,
// but the same for the same content.
func guidOf(b []byte) string {
	var u uuid.UUID
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return strings.ToUpper(u.String())
}

// writeSmallInitrd writes the initrd of a kernel+squashfs build at p: as
// /init, the small init of the init images (bundle.SquashfsInitFile), or
// PID 1 (their /init alone) if they have none; /dev/console, the modules of
// bundle.SquashfsModules with their dependencies and an index of just
// those, and bundle.SquashfsRootFile naming the partition; the microcode
// cpio in front, if any, as in the full initrd.
func writeSmallInitrd(p, tmp string, c Contents, modulesTar string, partName string, mtime int64, comp Compression, hasUcode bool, ucode string) error {
	var root []Layer
	if c.Modules != nil {
		keep, index, err := squashfsModules(fileData(c.ModuleFiles, kmod.IndexPath))
		if err != nil {
			return err
		}
		small, err := os.CreateTemp(tmp, "squashfs-modules-*.tar")
		if err != nil {
			return err
		}
		small.Close()
		if err := filterModules(modulesTar, small.Name(), keep); err != nil {
			return fmt.Errorf("modules for the squashfs initrd: %w", err)
		}
		root = append(root, Layer{Name: "modules for the squashfs disk", Open: func() (io.ReadCloser, error) { return os.Open(small.Name()) }})
		idx, err := memoryLayer("squashfs module index", []*tar.Header{
			{Name: kmod.IndexPath, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(index))},
		}, map[string][]byte{kmod.IndexPath: index})
		if err != nil {
			return err
		}
		root = append(root, idx)
	}
	base, err := memoryLayer("squashfs initrd base", []*tar.Header{
		{Name: "dev", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1},
		{Name: bundle.SquashfsRootFile, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(partName) + 1)},
	}, map[string][]byte{bundle.SquashfsRootFile: []byte(partName + "\n")})
	if err != nil {
		return err
	}
	root = append(root, base)
	var inits []Layer
	for _, img := range c.Init {
		ls, err := ImageLayers(img.Ref, img.Image)
		if err != nil {
			return err
		}
		inits = append(inits, ls...)
	}
	out, err := os.Create(p)
	if err != nil {
		return err
	}
	defer out.Close()
	if hasUcode {
		if err := writeMicrocode(out, ucode); err != nil {
			return fmt.Errorf("write squashfs initrd: %w", err)
		}
	}
	smallInit, err := squashfsInit(inits)
	if err != nil {
		return fmt.Errorf("squashfs initrd: %w", err)
	}
	err = compressWith(comp, out, func(w io.Writer) error {
		cs := newCPIOSink(w)
		if smallInit != nil {
			// The small init (cmd/squashfsinit) mounts the disk and runs
			// PID 1 from it.
			e := Entry{Name: rdinit, Mode: cpio.ModeRegular | 0o755, Mtime: mtime, Size: int64(len(smallInit))}
			if err := cs.Add(e, bytes.NewReader(smallInit)); err != nil {
				return fmt.Errorf("squashfs initrd: %w", err)
			}
		} else if err := Unpack(NewArchiveTo(&keepSink{Sink: cs, keep: map[string]bool{rdinit: true}}, mtime), "", inits); err != nil {
			// Init images without it: PID 1 alone, which does the same
			// and runs itself again from the disk.
			return fmt.Errorf("squashfs initrd: %w", err)
		}
		if err := Unpack(NewArchiveTo(cs, mtime), "", root); err != nil {
			return fmt.Errorf("squashfs initrd: %w", err)
		}
		return cs.Close()
	})
	if err != nil {
		return fmt.Errorf("write squashfs initrd: %w", err)
	}
	return out.Close()
}

// squashfsInit returns the data of bundle.SquashfsInitFile in the init
// images' layers, the last layer's if several have it; nil if none does.
// The layers are read from the last, each only up to the file; the
// disk's pass over them checks their digests.
func squashfsInit(layers []Layer) ([]byte, error) {
	for i := len(layers) - 1; i >= 0; i-- {
		var data []byte
		err := eachEntry(layers[i], func(_ int, h *tar.Header, r io.Reader) error {
			if name, err := cleanName(h.Name); err != nil || name != bundle.SquashfsInitFile {
				return err
			}
			if h.Typeflag != tar.TypeReg {
				return fmt.Errorf("%s is not a regular file", bundle.SquashfsInitFile) // eachEntry names the layer
			}
			var err error
			if data, err = io.ReadAll(r); err != nil {
				return err
			}
			return errCopied
		})
		if errors.Is(err, errCopied) {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// keepSink passes on the entries named in keep (and no directory: kept
// names are at the top), and drops the rest.
type keepSink struct {
	Sink
	keep map[string]bool
}

func (s *keepSink) Add(e Entry, data io.Reader) error {
	if e.Mode&cpio.ModeType == cpio.ModeDir || !s.keep[e.Name] {
		return nil
	}
	if e.HardLink != "" && !s.keep[e.HardLink] {
		return fmt.Errorf("%s is a hard link to %s, which the small initrd leaves out", e.Name, e.HardLink)
	}
	return s.Sink.Add(e, data)
}

// squashfsModules works out, from the full module index, the module files
// the small initrd needs (paths in kernel.tar) and their index.
// fileData is the data of the file at path among files; nil if none is.
func fileData(files []kmod.File, path string) []byte {
	for _, f := range files {
		if f.Path == path {
			return f.Data
		}
	}
	return nil
}

func squashfsModules(index []byte) (keep map[string]bool, small []byte, err error) {
	ix, err := kmod.ReadIndex(bytes.NewReader(index))
	if err != nil {
		return nil, nil, fmt.Errorf("module index: %w", err)
	}
	keep = map[string]bool{}
	out := kmod.Index{Version: kmod.IndexVersion}
	for i := range ix.Kernels {
		k := &ix.Kernels[i]
		mods, err := k.Tree().Closure(bundle.SquashfsModules...)
		if err != nil {
			return nil, nil, fmt.Errorf("kernel %s: %w (kernel+squashfs needs %s, as modules or built in)", k.Release, err, strings.Join(bundle.SquashfsModules, ", "))
		}
		names := map[string]bool{}
		for _, m := range mods {
			names[m.Name] = true
			keep["lib/modules/"+k.Release+"/"+m.Path] = true
		}
		sk := kmod.KernelModules{Release: k.Release, Modules: []kmod.IndexEntry{}, Builtin: k.Builtin}
		for _, e := range k.Modules {
			if names[e.Name] {
				sk.Modules = append(sk.Modules, e)
			}
		}
		out.Kernels = append(out.Kernels, sk)
	}
	var buf bytes.Buffer
	if err := kmod.WriteIndex(&buf, &out); err != nil {
		return nil, nil, err
	}
	return keep, buf.Bytes(), nil
}

// filterModules copies the regular files of the tar at src named in keep
// (lib/modules/..., also found under usr/) to a new tar at dst.
func filterModules(src, dst string, keep map[string]bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name, err := cleanName(h.Name)
		if err != nil || h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA || !keep[strings.TrimPrefix(name, "usr/")] {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}
