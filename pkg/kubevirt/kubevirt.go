// Package kubevirt assembles the container images KubeVirt boots virtual
// machines from, out of keel's build outputs:
//
//   - a containerDisk: one layer holding a disk image under /disk/, owned
//     by the qemu user (107:107), which KubeVirt attaches as a disk;
//   - a kernelBoot container: one layer holding a kernel and an initrd,
//     owned 107:107 too, which KubeVirt copies out and boots directly
//     (spec.domain.firmware.kernelBoot.container, whose kernelPath and
//     initrdPath name them).
//
// The images are reproducible: the same files and time stamp give the
// same digest. Layers are streamed from the files, so memory stays
// bounded whatever the disk's size. Pushing is pkg/oci's job.
package kubevirt

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
)

// QemuID is the uid and gid KubeVirt runs QEMU as; a containerDisk's disk
// must be readable by it.
const QemuID = 107

// Where the kernelBoot image holds its files: the values to give
// kernelBoot.container's kernelPath and initrdPath. KubeVirt leaves them
// to the user; these are the names Debian and most distributions use.
const (
	KernelPath = "/boot/vmlinuz"
	InitrdPath = "/boot/initrd.img"
)

// DiskDir is the directory of a containerDisk that KubeVirt takes its one
// disk image from.
const DiskDir = "/disk"

// DiskFormat is what a containerDisk's disk is, told by its content:
// KubeVirt takes qcow2 and raw.
type DiskFormat string

const (
	QCOW2 DiskFormat = "qcow2"
	Raw   DiskFormat = "raw"
)

// Options are what every image here is stamped with.
type Options struct {
	// Platform is the image's OS and architecture: a node pulls the
	// image for its own.
	Platform v1.Platform
	// Mtime is every file's time stamp and the image's creation time, in
	// seconds since 1970 ($SOURCE_DATE_EPOCH, or 0).
	Mtime int64
}

// ContainerDisk makes a containerDisk of the disk image file disk: the
// file as /disk/disk.qcow2 or /disk/disk.img (by its content), mode 0440,
// in /disk/ (0555), both owned 107:107.
func ContainerDisk(disk string, o Options) (v1.Image, DiskFormat, error) {
	format, err := SniffDisk(disk)
	if err != nil {
		return nil, "", err
	}
	name := DiskDir + "/disk.img"
	if format == QCOW2 {
		name = DiskDir + "/disk.qcow2"
	}
	img, err := image([]entry{
		{name: DiskDir, dir: true, mode: 0o555, id: QemuID},
		{name: name, src: disk, mode: 0o440, id: QemuID},
	}, o, "keel push --format containerdisk")
	return img, format, err
}

// KernelBoot makes a kernelBoot image of the files kernel and initrd, at
// KernelPath and InitrdPath, owned 107:107 as KubeVirt's guide asks
// (its kernel boot section: the files must belong to the qemu user and
// group), and readable by everyone (0444).
func KernelBoot(kernel, initrd string, o Options) (v1.Image, error) {
	return image([]entry{
		{name: path.Dir(KernelPath), dir: true, mode: 0o555, id: QemuID},
		{name: KernelPath, src: kernel, mode: 0o444, id: QemuID},
		{name: InitrdPath, src: initrd, mode: 0o444, id: QemuID},
	}, o, "keel push --format kernelboot")
}

// SniffDisk tells a disk image's format from its first bytes. Formats
// KubeVirt does not boot from a containerDisk (VMDK, VHD, a gzip'd tar
// such as gcp's) are refused here rather than by a failing VM.
func SniffDisk(file string) (DiskFormat, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", file)
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	head = head[:n]
	switch {
	case n == 0:
		return "", fmt.Errorf("%s: empty file, want a qcow2 or raw disk image", file)
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return QCOW2, nil
	case bytes.HasPrefix(head, []byte("KDMV")):
		return "", fmt.Errorf("%s: a VMDK image; a containerDisk takes qcow2 or raw (keel build --format qcow2-efi)", file)
	case bytes.HasPrefix(head, []byte("\x1f\x8b")):
		return "", fmt.Errorf("%s: gzip data (a gcp image?); a containerDisk takes qcow2 or raw (keel build --format qcow2-efi)", file)
	case bytes.HasPrefix(head, []byte("conectix")):
		return "", fmt.Errorf("%s: a dynamic VHD; a containerDisk takes qcow2 or raw (keel build --format qcow2-efi)", file)
	}
	// A fixed VHD is raw data with a footer at the end: QEMU reads it as
	// raw, with 512 bytes to spare, so it is taken as raw.
	return Raw, nil
}

// entry is one file or directory of a layer.
type entry struct {
	name string // absolute path in the image
	dir  bool
	src  string // for a file: the host file it is copied from
	mode int64
	id   int // uid and gid
	size int64
}

// image makes a one-layer OCI image of entries, with OCI media types, no
// entrypoint, and every time stamp o.Mtime.
func image(entries []entry, o Options, createdBy string) (v1.Image, error) {
	for i := range entries {
		e := &entries[i]
		if e.dir {
			continue
		}
		st, err := os.Stat(e.src)
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", e.src)
		}
		e.size = st.Size()
	}
	// Sorted, so a directory comes before what it holds and the order
	// never depends on the caller's.
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	mtime := time.Unix(o.Mtime, 0).UTC()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return layerTar(entries, mtime), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: mtime}, CreatedBy: createdBy},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = o.Platform.OS
	cf.Architecture = o.Platform.Architecture
	cf.Variant = o.Platform.Variant
	cf.Created = v1.Time{Time: mtime}
	return mutate.ConfigFile(img, cf)
}

// layerTar streams the tar of entries: the files' bytes are read as the
// tar is consumed, never held whole.
func layerTar(entries []entry, mtime time.Time) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeTar(pw, entries, mtime))
	}()
	return pr
}

func writeTar(w io.Writer, entries []entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(e.name, "/"),
			Mode:    e.mode,
			Uid:     e.id,
			Gid:     e.id,
			ModTime: mtime,
		}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.dir {
			continue
		}
		if err := copyFile(tw, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFile copies e's file into the tar; a file whose size changed since
// the image was made is an error, not a short or corrupt layer.
func copyFile(w io.Writer, e entry) error {
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size))
	if err != nil {
		return fmt.Errorf("read %s: %w", e.src, err)
	}
	if more, _ := f.Read(make([]byte, 1)); n != e.size || more > 0 {
		return fmt.Errorf("%s changed while it was pushed: it was %d bytes", e.src, e.size)
	}
	return nil
}
