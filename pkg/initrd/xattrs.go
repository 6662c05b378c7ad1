package initrd

import (
	"archive/tar"
	"encoding/base64"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/keel-os/keel/pkg/xattrs"
)

// Extended attributes cannot go into a newc cpio archive, and Linux sets
// none when it unpacks an initramfs. So Unpack collects the attributes of
// every file it writes from the layers' tar headers and writes them as a
// manifest (pkg/xattrs) into xattrs.Dir, one file per segment, which PID 1
// applies at boot before any container runs.

// xattr is one extended attribute of a layer entry.
type xattr struct{ name, value string }

// headerXattrs reads the extended attributes of a tar entry from its PAX
// records, sorted by name: "SCHILY.xattr.<name>" (Go's archive/tar, GNU
// tar, Docker and go-containerregistry) and, for attributes named only
// there, libarchive's "LIBARCHIVE.xattr.<url-escaped name>" with a base64
// value.
func headerXattrs(h *tar.Header) ([]xattr, error) {
	var xs []xattr
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, xattr{name, v})
		}
	}
	for k, v := range h.PAXRecords {
		escaped, ok := strings.CutPrefix(k, "LIBARCHIVE.xattr.")
		if !ok {
			continue
		}
		name, err := url.PathUnescape(escaped)
		if err != nil {
			return nil, fmt.Errorf("extended attribute name %q: %w", escaped, err)
		}
		if _, ok := h.PAXRecords["SCHILY.xattr."+name]; ok {
			continue
		}
		value, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("extended attribute %s: value is not base64: %w", name, err)
		}
		xs = append(xs, xattr{name, string(value)})
	}
	slices.SortFunc(xs, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return xs, nil
}

// settable says whether Linux could set the attribute at all: a valid
// name in one of its four namespaces and a value within its limit. Others
// (macOS's com.apple.*, say) are left out of the manifest, with a warning.
// So are overlayfs's own (trusted.overlay.*): set on a shared image, which
// PID 1 uses as an overlay's lower layer, they would be read as opaque
// directories or redirects, and a layer is not the place to say that.
func settable(x xattr) bool {
	if xattrs.CheckName(x.name) != nil || len(x.value) > xattrs.MaxValueLen {
		return false
	}
	if strings.HasPrefix(x.name, "trusted.overlay.") {
		return false
	}
	ns, _, _ := strings.Cut(x.name, ".")
	return ns == "security" || ns == "trusted" || ns == "system" || ns == "user"
}

// oldTmpfsHolds says whether the tmpfs that holds the booted initrd
// accepts the attribute on Linux 6.1: security.* and trusted.*, and POSIX
// ACLs. user.* came in 6.6.
func oldTmpfsHolds(name string) bool {
	return strings.HasPrefix(name, "security.") || strings.HasPrefix(name, "trusted.") ||
		name == "system.posix_acl_access" || name == "system.posix_acl_default"
}

// xattrManifest collects the attributes of what one segment writes.
type xattrManifest struct{ entries []xattrs.Entry }

// add records the settable attributes of the file written at name.
func (m *xattrManifest) add(name string, xs []xattr) {
	for _, x := range xs {
		if settable(x) {
			m.entries = append(m.entries, xattrs.Entry{Path: name, Name: x.name, Value: []byte(x.value)})
		}
	}
}

// write puts the manifest into the archive, named after tree, the first
// prefix of the segment's files; with nothing to apply, nothing is written.
func (m *xattrManifest) write(a *Archive, tree string) error {
	if len(m.entries) == 0 {
		return nil
	}
	b, err := xattrs.Encode(m.entries)
	if err != nil {
		return fmt.Errorf("xattrs manifest of %s: %w", tree, err)
	}
	// The root segment always makes the directory (baseLayer). A bundle's
	// segment must not write it again: for a directory that exists, the
	// kernel resets the owner and mode to the entry's, and /etc is the
	// image's.
	a.dirWritten(xattrs.Dir)
	return a.WriteFile(path.Join(xattrs.Dir, xattrs.FileName(tree)), 0o644, b)
}

// xattrWarnings says, once per image, which surviving files have
// attributes that may not be set at boot: those left out (not Linux
// attributes), and user.* ones, which the tmpfs root holds only from Linux
// 6.6 on (PID 1 tries, and logs each failure). Paths are the image's own.
func xattrWarnings(t *tree, layers []Layer) []string {
	type finding struct {
		image    string
		leftOut  bool
		count    int
		examples []string
	}
	found := map[[2]string]*finding{}
	var order []*finding
	names := make([]string, 0, len(t.nodes))
	for name, n := range t.nodes {
		if len(n.xattrs) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		n := t.nodes[name]
		image := "?"
		if n.at.layer >= 0 {
			image = layers[n.at.layer].image()
		}
		var out, later []string
		for _, x := range n.xattrs {
			switch {
			case !settable(x):
				out = append(out, x.name)
			case !oldTmpfsHolds(x.name):
				later = append(later, x.name)
			}
		}
		for _, c := range []struct {
			leftOut bool
			names   []string
		}{{true, out}, {false, later}} {
			if len(c.names) == 0 {
				continue
			}
			key := [2]string{image, fmt.Sprint(c.leftOut)}
			f := found[key]
			if f == nil {
				f = &finding{image: image, leftOut: c.leftOut}
				found[key] = f
				order = append(order, f)
			}
			f.count++
			if len(f.examples) < 3 {
				f.examples = append(f.examples, fmt.Sprintf("%q (%s)", name, strings.Join(c.names, ",")))
			}
		}
	}
	slices.SortFunc(order, func(a, b *finding) int {
		if c := strings.Compare(a.image, b.image); c != 0 {
			return c
		}
		return strings.Compare(fmt.Sprint(b.leftOut), fmt.Sprint(a.leftOut))
	})
	var lines []string
	for _, f := range order {
		files := strings.Join(f.examples, ", ")
		if more := f.count - len(f.examples); more > 0 {
			files += fmt.Sprintf(" and %d more", more)
		}
		if f.leftOut {
			lines = append(lines, fmt.Sprintf("%s: extended attributes left out (not settable on Linux, or overlayfs's own): %s", f.image, files))
		} else {
			lines = append(lines, fmt.Sprintf("%s: extended attributes a tmpfs root holds only from Linux 6.6 on (user.*), set at boot where the kernel can (PID 1 logs each it cannot): %s", f.image, files))
		}
	}
	return lines
}
