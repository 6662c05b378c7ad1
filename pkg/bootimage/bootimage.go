// Package bootimage names the files of keel/boot, the image of boot
// loaders that tools/mkimages makes from Debian's packages, and reads
// them out of a pulled image. The disk formats take their loaders from
// here and never from the host's /usr.
package bootimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// DefaultRef is the boot image keel build uses unless told otherwise:
// keel/boot:<systemd>-<syslinux>, the versions pinned in
// tools/versions.env (a test there keeps the two in step).
const DefaultRef = "keel/boot:252-6.04"

// Paths of the loaders inside the image.
const (
	// EFIStub is systemd-stub, the PE front of a unified kernel image.
	EFIStub = "efi/linuxx64.efi.stub"
	// SystemdBoot is systemd-boot, the UEFI boot menu.
	SystemdBoot = "efi/systemd-bootx64.efi"
	// Isolinux is the El Torito BIOS loader.
	Isolinux = "bios/isolinux.bin"
	// IsohybridMBR is the MBR code that starts isolinux.bin from a disk.
	IsohybridMBR = "bios/isohdpfx.bin"
	// Ldlinux is the syslinux core module isolinux loads first.
	Ldlinux = "bios/ldlinux.c32"
)

// Loaders are the boot loaders, by path in the image.
type Loaders map[string][]byte

// maxFile bounds what is read of one file: loaders are kilobytes.
const maxFile = 16 << 20

// Read takes the loaders out of img (ref names it in errors). Every path
// above must be there.
func Read(ref string, img v1.Image) (Loaders, error) {
	want := map[string]bool{EFIStub: true, SystemdBoot: true, Isolinux: true, IsohybridMBR: true, Ldlinux: true}
	out := Loaders{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read boot image %s: %w", ref, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if !want[name] || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxFile {
			return nil, fmt.Errorf("boot image %s: /%s is %d bytes, too big for a boot loader", ref, name, h.Size)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read /%s of boot image %s: %w", name, ref, err)
		}
		out[name] = b
	}
	for _, p := range []string{EFIStub, SystemdBoot, Isolinux, IsohybridMBR, Ldlinux} {
		if out[p] == nil {
			return nil, fmt.Errorf("boot image %s has no /%s (make it with tools/mkimages -only boot)", ref, p)
		}
	}
	return out, nil
}
