package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
)

// DefaultOverlayDir holds the writable layers of the bundles whose rootfs
// overlays a shared image (runtime.json rootfsLower), one directory each.
const DefaultOverlayDir = "/run/keel/overlay"

// mountSharedRoot makes, when runtime.json names a rootfsLower, the
// bundle's rootfs an overlay: the shared image below, read-only, and a
// writable layer of the bundle's own above, so that what the container
// writes reaches neither the image nor the other bundles sharing it. A
// bundle without rootfsLower (every LinuxKit bundle) is left alone.
//
// The writable layer lives in a tmpfs of its own under overlayDir
// (DefaultOverlayDir when empty): the overlay's upper directory needs a
// filesystem with xattrs and whiteouts, which tmpfs has whatever / is
// (the initramfs may be ramfs). Both mounts are recorded in table, so that
// shutdown undoes them. Failing is the bundle's failure: there is no
// fallback, as the image is nowhere else in the system.
//
// It must come before anything else touches the rootfs (runtime.json's
// mkdir and mounts), which would otherwise land under the overlay.
func mountSharedRoot(table *mount.Table, overlayDir string, b bundle.Bundle, rt *bundle.Runtime, rootfs string) error {
	if rt.RootfsLower == "" {
		return nil
	}
	if table == nil {
		return errors.New("rootfsLower: no mount table")
	}
	if overlayDir == "" {
		overlayDir = DefaultOverlayDir
	}
	lower := inBundle(b, rt.RootfsLower)
	var st unix.Stat_t
	if err := unix.Stat(lower, &st); err != nil {
		return fmt.Errorf("rootfsLower %s: %w", lower, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("rootfsLower %s: not a directory", lower)
	}
	// Onboot and onshutdown bundles share NNN- names.
	layer := filepath.Join(overlayDir, kindName(b)+"-"+b.Name)
	upper, work := filepath.Join(layer, "upper"), filepath.Join(layer, "work")
	for _, p := range []string{lower, upper, work, rootfs} {
		// The overlay's options are a comma-separated list, and ':'
		// separates lower directories.
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("rootfsLower: overlay path %q has one of , : \\", p)
		}
	}
	if err := os.MkdirAll(layer, 0o700); err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	if err := table.Mount("tmpfs", layer, "tmpfs", 0, withOption("mode=0700", mount.TmpfsSizeOption(mount.TmpfsOverlay))); err != nil {
		return fmt.Errorf("rootfsLower: writable layer: %w", err)
	}
	// The upper directory is the root of the merged tree: it gets the
	// image root's mode and owner.
	if err := os.Mkdir(upper, 0o700); err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	if err := os.Chmod(upper, modeOf(st.Mode)); err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	err := table.Mount("overlay", rootfs, "overlay", 0, opts)
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("rootfsLower: the kernel has no overlay filesystem (init loads the overlay module at boot: is overlay.ko in the kernel image's kernel.tar?): %w", err)
	}
	if err != nil {
		return fmt.Errorf("rootfsLower: %w", err)
	}
	return nil
}

// modeOf turns a stat mode's permission bits into an os.FileMode, which
// keeps setuid, setgid and sticky apart from the permissions.
func modeOf(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// withOption appends opt to a mount's data when there is one.
func withOption(data, opt string) string {
	if opt == "" {
		return data
	}
	return data + "," + opt
}
