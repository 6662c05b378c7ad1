package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bootimage"
)

// bootFile is one file of keel/boot: where it is in which Debian package.
type bootFile struct {
	pkg, src, dst string
}

// bootFiles are the boot loaders keel's disk formats use, from Debian's
// packages. UEFI: systemd-stub, the front of every unified kernel image.
// BIOS: isolinux (CD-ROM and hybrid disks) and its first module.
var bootFiles = []bootFile{
	{"systemd-boot-efi", "usr/lib/systemd/boot/efi/linuxx64.efi.stub", bootimage.EFIStub},
	{"systemd-boot-efi", "usr/lib/systemd/boot/efi/systemd-bootx64.efi", bootimage.SystemdBoot},
	{"isolinux", "usr/lib/ISOLINUX/isolinux.bin", bootimage.Isolinux},
	{"isolinux", "usr/lib/ISOLINUX/isohdpfx.bin", bootimage.IsohybridMBR},
	{"syslinux-common", "usr/lib/syslinux/modules/bios/ldlinux.c32", bootimage.Ldlinux},
}

// bootTag is keel/boot's tag: the pinned systemd and syslinux versions.
func bootTag(v *versions) string { return v.SystemdBoot + "-" + v.Syslinux }

// makeBoot makes keel/boot:<systemd>-<syslinux>, the boot loaders of the
// disk formats, so that keel build takes them from an image like any
// other and never from the host's /usr.
func makeBoot(ctx context.Context, b *builder) error {
	pinned := map[string]string{
		"systemd-boot-efi": b.versions.SystemdBoot,
		"isolinux":         b.versions.Syslinux,
		"syslinux-common":  b.versions.Syslinux,
	}
	t := newTree()
	labels := map[string]string{}
	debs := map[string]debPackage{}
	for _, f := range bootFiles {
		deb, ok := debs[f.pkg]
		if !ok {
			var cached bool
			var err error
			deb, cached, err = fetchDeb(ctx, b.downloadsDir(), f.pkg)
			if err != nil {
				return err
			}
			if err := checkPinned(deb, pinned[f.pkg]); err != nil {
				return fmt.Errorf("%w: bump it in %s", err, b.versionsFile)
			}
			b.step("boot", "%s %s (%s)", f.pkg, deb.Version, fetchedOrCached(cached))
			debs[f.pkg] = deb
			labels["org.keel.boot."+f.pkg] = deb.Version
			dir := filepath.Join(b.work, "boot", f.pkg)
			if err := extractDeb(deb.Path, dir, func(string) bool { return true }); err != nil {
				return fmt.Errorf("unpack %s: %w", f.pkg, err)
			}
		}
		src := filepath.Join(b.work, "boot", f.pkg, filepath.FromSlash(f.src))
		if err := t.file(path.Clean(f.dst), 0o644, src); err != nil {
			return fmt.Errorf("%s: /%s: %w", f.pkg, f.src, err)
		}
	}
	ref := "keel/boot:" + bootTag(b.versions)
	digest, st, err := b.putImage(ref, t, v1.Config{Labels: labels})
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	b.step("boot", "%s %s (%s)", ref, digest, megabytes(st.Uncompressed))
	return nil
}

// checkPinned fails when the archive's package is not the pinned upstream
// version (a prefix: "6.04" pins 6.04~git20190206.bf6db5b4+dfsg1).
func checkPinned(deb debPackage, pin string) error {
	up := deb.UpstreamVersion()
	if up == pin || strings.HasPrefix(up, pin+".") || strings.HasPrefix(up, pin+"~") || strings.HasPrefix(up, pin+"+") {
		return nil
	}
	return fmt.Errorf("%s in the archive is %s, but the pinned version is %s", deb.Name, deb.Version, pin)
}
