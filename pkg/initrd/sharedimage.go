package initrd

import (
	"strings"

	"github.com/keel-os/keel/pkg/bundle"
)

// An image used by several bundles is stored once in the initrd, which
// lives in RAM. How depends on whether the bundles write to their rootfs:
//
//   - all read-only: each rootfs holds the image, its regular files written
//     once and hard-linked into the other rootfs (one inode, the data
//     once). Nobody writes to a read-only rootfs, so sharing inodes is
//     safe, and the bundles stay plain LinuxKit bundles.
//   - any writable: hard links would let one container's writes show in
//     the others, so the image goes once to bundle.ImagePath(<digest hex>)
//     and each writable bundle's rootfs is an empty mount point whose
//     runtime.json names that directory as rootfsLower; PID 1 mounts an
//     overlay there with a writable layer of the bundle's own. Read-only
//     bundles of the group keep a full rootfs, hard-linked to the shared
//     directory's files.
//
// An image used by one bundle is written into its rootfs, as LinuxKit does.

// bundleGroup is the bundles written in one segment: one bundle, or every
// bundle of an image used more than once.
type bundleGroup struct {
	bundles []Bundle
	// lower is the directory in the initrd (no leading "/") holding the
	// group's image for its writable bundles to overlay; "" when every
	// bundle holds the image in its own rootfs.
	lower string
}

// lowerOf is what b's runtime.json names as rootfsLower: the shared image
// for a writable bundle of a group that has one, else "".
func (g bundleGroup) lowerOf(b Bundle) string {
	if g.lower == "" || readonly(b) {
		return ""
	}
	return "/" + g.lower
}

// sharedGroups puts the bundles in segments, in order of their first
// bundle: one each, except that the bundles of one image share a segment
// in which the image's files are stored once.
//
// Without overlays (the init images' PID 1 cannot mount rootfsLower), a
// writable bundle gets a segment and a full copy of its own.
func sharedGroups(bs []Bundle, overlays bool) []bundleGroup {
	var out []bundleGroup
	first := map[string]int{} // image digest -> index in out
	for _, b := range bs {
		id := imageID(b.Image)
		if !overlays && !readonly(b) {
			out = append(out, bundleGroup{bundles: []Bundle{b}})
			continue
		}
		if i, ok := first[id]; ok && id != "" {
			out[i].bundles = append(out[i].bundles, b)
			continue
		}
		first[id] = len(out)
		out = append(out, bundleGroup{bundles: []Bundle{b}})
	}
	for i, g := range out {
		if len(g.bundles) < 2 {
			continue
		}
		for _, b := range g.bundles {
			if !readonly(b) {
				_, hex, _ := strings.Cut(imageID(b.Image), ":")
				out[i].lower = bundle.ImagePath(hex)[1:]
				break
			}
		}
	}
	return out
}

// sharesImages reports whether any bundle overlays a shared image, i.e.
// whether the initrd has bundle.ImagesDir.
func sharesImages(bs []Bundle, overlays bool) bool {
	for _, g := range sharedGroups(bs, overlays) {
		if g.lower != "" {
			return true
		}
	}
	return false
}

func readonly(b Bundle) bool {
	return b.Config != nil && b.Config.Root != nil && b.Config.Root.Readonly
}
