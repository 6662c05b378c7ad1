package initrd

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
)

// Whiteout names of the OCI layer format.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// Layer is one tar stream of a filesystem change set. Unpack reads each
// layer twice, so Open must return the same stream every time.
type Layer struct {
	// Name says where the layer comes from, for errors:
	// "keel/busybox:1.35 layer 1".
	Name string
	Open func() (io.ReadCloser, error)
	// ID names the layer's content for the segment cache (e.g. an image
	// digest and a path); a segment made from a layer without one is never
	// cached.
	ID string
	// Image names the image the layer is part of, for warnings given once
	// per image; "" means Name.
	Image string
}

func (l Layer) image() string {
	if l.Image != "" {
		return l.Image
	}
	return l.Name
}

// ImageLayers returns the layers of img, bottom first, named after ref.
func ImageLayers(ref string, img v1.Image) ([]Layer, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers of %s: %w", ref, err)
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = Layer{Name: fmt.Sprintf("%s layer %d", ref, i+1), Open: l.Uncompressed, Image: ref}
	}
	return out, nil
}

// Unpack writes the filesystem that applying layers in order makes into a,
// under prefix ("" for the root of the initrd). Whiteouts and opaque
// directories are applied, so nothing removed by an upper layer is written.
//
// Nothing is held in memory but the headers: a first pass over the layers
// works out which entry of which layer survives, and how many names each
// hard-linked file ends up with (the kernel must know that when it meets
// the first name); a second pass streams the surviving entries' data
// straight from the layers into the archive. Directories come first, sorted,
// so every parent exists before its children; files follow in layer order.
//
// Every path stays inside prefix: names with ".." are refused, absolute
// names are taken as relative, a symlinked parent is resolved within the
// image (so the archive never writes through a symlink), a hard link must
// name a file of the same filesystem, and nothing goes below a file.
//
// The extended attributes of what is written (from the layers' PAX
// records, as the last layer to write each file left them) go into a
// manifest at xattrs.Dir, named after prefix; see xattrs.go.
func Unpack(a *Archive, prefix string, layers []Layer) error {
	return UnpackShared(a, []string{prefix}, layers, nil)
}

// UnpackShared writes the filesystem of layers under each of prefixes,
// storing each regular file once: the first prefix's name carries the
// data, the same file under the other prefixes is a hard link to it (one
// inode). Directories, symlinks and device nodes are written under each
// prefix. Sharing inodes is only safe for trees nobody writes to.
//
// mountpoints are made as directories (with their parents) where the
// layers have nothing: a read-only rootfs cannot get them at run time.
//
// The manifest of extended attributes is named after the first prefix and
// lists each directory, symlink and device node under every prefix, and
// each inode of a regular file once.
func UnpackShared(a *Archive, prefixes []string, layers []Layer, mountpoints []string) error {
	fsys := newTree()
	for i, l := range layers {
		if err := fsys.scan(i, l); err != nil {
			return err
		}
	}
	for _, m := range mountpoints {
		fsys.ensureDir(m)
	}
	if prefixes[0] == "" {
		// The small initrd's init is for a kernel+squashfs build's initrd
		// alone (writeSmallInitrd): the system's tree leaves it out.
		fsys.remove(bundle.SquashfsInitFile)
	}
	var manifest xattrManifest
	for _, prefix := range prefixes {
		if err := a.MkdirAll(prefix); err != nil {
			return err
		}
		for _, d := range fsys.dirs() {
			perm, uid, gid := uint32(0o755), uint32(0), uint32(0)
			if n := fsys.nodes[d]; n != nil {
				perm, uid, gid = uint32(n.mode)&cpio.ModePerm, uint32(n.uid), uint32(n.gid)
				manifest.add(join(prefix, d), n.xattrs)
			}
			if err := a.Dir(join(prefix, d), perm, uid, gid); err != nil {
				return err
			}
		}
	}
	plan := fsys.plan()
	if prefixes[0] == "" {
		if err := copyFirst(a, prefixes, layers, plan, &manifest, rdinit); err != nil {
			return err
		}
	}
	for i, l := range layers {
		if err := copyLayer(a, prefixes, i, l, plan, &manifest); err != nil {
			return err
		}
	}
	if len(plan) > 0 {
		return fmt.Errorf("unpack %s: %d entries vanished between two reads of the layers", layers[0].Name, len(plan))
	}
	a.warn(xattrWarnings(fsys, layers)...)
	return manifest.write(a, prefixes[0])
}

// at is the position of an entry: which layer, which header in its tar.
type at struct{ layer, seq int }

// node is a surviving (or, once dead, a replaced) entry of the merged tree.
type node struct {
	name     string
	at       at
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	linkname string
	major    int64
	minor    int64
	// group is set for a file that has (or had) more than one name.
	group *linkGroup
	dead  bool
	// xattrs are the entry's extended attributes, sorted by name. A
	// hard-linked file has its source's: the entry that brought the data.
	xattrs []xattr
}

func (n *node) isDir() bool { return n.typ == tar.TypeDir }

// linkGroup is one inode with several names: the entry that brought its
// data and the hard links made to it since.
type linkGroup struct {
	source  *node
	members []*node
}

// tree is the merged filesystem after the layers scanned so far.
type tree struct {
	nodes  map[string]*node
	groups []*linkGroup
	// kids indexes the tree by parent, so that a whiteout visits only
	// what lies below its directory rather than every node (which made
	// a layer of many opaque directories quadratic). It holds every path
	// that is a node or has a node below it, each listed under its parent
	// ("" for the root). A node may outlive its parent directory (an
	// opaque marker keeps its own layer's entries), so the index is of
	// paths, not of nodes.
	kids map[string]map[string]struct{}
	// clean[dir] is a layer whose whiteouts have already removed
	// everything from lower layers below dir: nothing lower can appear
	// there again while that layer is scanned (what it adds is its own),
	// so another whiteout of the same layer need not look.
	clean map[string]int
	// whiteoutVisits counts the paths whiteouts look at, so that a test
	// can check their cost grows with what they remove, not with the tree.
	whiteoutVisits int
}

func newTree() *tree {
	return &tree{nodes: map[string]*node{}, kids: map[string]map[string]struct{}{}, clean: map[string]int{}}
}

// set puts n at name, and name in the index.
func (t *tree) set(name string, n *node) {
	t.nodes[name] = n
	for p := name; p != ""; p = parent(p) {
		dir := parent(p)
		ks := t.kids[dir]
		if ks == nil {
			ks = map[string]struct{}{}
			t.kids[dir] = ks
		}
		if _, ok := ks[p]; ok {
			return // and so are its parents
		}
		ks[p] = struct{}{}
	}
}

// drop deletes the node at name, and from the index the paths that no
// longer lead to a node.
func (t *tree) drop(name string) {
	delete(t.nodes, name)
	t.unindex(name)
}

func (t *tree) unindex(p string) {
	for p != "" && t.nodes[p] == nil && len(t.kids[p]) == 0 {
		delete(t.kids, p)
		dir := parent(p)
		delete(t.kids[dir], p)
		p = dir
	}
}

// scan applies layer number li to the tree, reading headers only.
func (t *tree) scan(li int, l Layer) error {
	return eachEntry(l, func(seq int, h *tar.Header, _ io.Reader) error {
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if name, err = t.resolveParents(name); err != nil {
			return err
		}
		dir, base := parent(name), path.Base(name)
		switch {
		case base == opaqueWhiteout:
			t.removeBelow(dir, li)
			return nil
		case strings.HasPrefix(base, whiteoutPrefix):
			// A whiteout hides what lower layers have at that name. If this
			// layer has already made the name anew, only what lay below
			// it goes.
			victim := join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if n := t.nodes[victim]; n != nil && n.at.layer < li {
				t.remove(victim)
			} else if n != nil {
				t.removeBelow(victim, li)
			}
			return nil
		case name == "":
			return nil // the root itself: its prefix is made by the archive
		}
		xs, err := headerXattrs(h)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n := &node{
			name: name, at: at{li, seq}, typ: h.Typeflag, mode: h.Mode,
			uid: h.Uid, gid: h.Gid, size: h.Size, linkname: h.Linkname,
			major: h.Devmajor, minor: h.Devminor, xattrs: xs,
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			n.typ = tar.TypeReg
		case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			n.size = 0
		case tar.TypeLink:
			if err := t.link(n); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", name, h.Typeflag)
		}
		if err := t.checkParents(name); err != nil {
			return err
		}
		t.makeParents(name, n.at)
		if old := t.nodes[name]; old != nil {
			if !(old.isDir() && n.isDir()) {
				t.remove(name)
			}
		}
		t.set(name, n)
		return nil
	})
}

// link makes n, a hard link, one more name of its target's inode.
func (t *tree) link(n *node) error {
	target, err := cleanName(n.linkname)
	if err != nil || target == "" {
		return fmt.Errorf("%s: hard link to %q leaves the image", n.name, n.linkname)
	}
	if target, err = t.resolveParents(target); err != nil {
		return fmt.Errorf("%s: hard link to %q: %w", n.name, n.linkname, err)
	}
	src := t.nodes[target]
	if src == nil || src.typ != tar.TypeReg && src.typ != tar.TypeLink {
		return fmt.Errorf("%s: hard link to %q, which is not a file of the image", n.name, n.linkname)
	}
	if src.group == nil {
		src.group = &linkGroup{source: src, members: []*node{src}}
		t.groups = append(t.groups, src.group)
	}
	n.group = src.group
	n.group.members = append(n.group.members, n)
	n.size = 0
	return nil
}

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// resolveParents follows the symlinks among name's parents, as extracting
// the layer onto a real filesystem would: with /lib a link to usr/lib (a
// merged-/usr image), a kernel.tar's lib/modules/... lands in
// usr/lib/modules/.... Resolution stays inside the tree: ".." stops at its
// root and an absolute target starts from it, so the archive never writes
// through a symlink, and never outside the image.
func (t *tree) resolveParents(name string) (string, error) {
	dir := parent(name)
	if dir == "" {
		return name, nil
	}
	hops := 0
	resolved, err := t.resolve(dir, &hops)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return join(resolved, path.Base(name)), nil
}

// resolve returns the real path of p in the tree, following every symlink
// in it, including its last component.
func (t *tree) resolve(p string, hops *int) (string, error) {
	cur := ""
	for _, c := range strings.Split(p, "/") {
		next := join(cur, c)
		n := t.nodes[next]
		if n == nil || n.typ != tar.TypeSymlink {
			cur = next
			continue
		}
		if *hops++; *hops > maxSymlinks {
			return "", fmt.Errorf("too many levels of symbolic links at %s", next)
		}
		target := n.linkname
		if !path.IsAbs(target) {
			target = cur + "/" + target
		}
		r, err := t.resolve(strings.TrimPrefix(path.Clean("/"+target), "/"), hops)
		if err != nil {
			return "", err
		}
		cur = r
	}
	return cur, nil
}

// checkParents refuses an entry below a non-directory, such as a file: the
// kernel could not create it. (Symlinked parents are resolved before.)
func (t *tree) checkParents(name string) error {
	for p := parent(name); p != ""; p = parent(p) {
		if n := t.nodes[p]; n != nil && !n.isDir() {
			return fmt.Errorf("%s: path goes through %s, which is not a directory", name, p)
		}
	}
	return nil
}

// makeParents adds the missing parents of name as directories, as
// extracting the layer would create them: they outlive a later whiteout of
// the entry that implied them.
func (t *tree) makeParents(name string, pos at) {
	for p := parent(name); p != "" && t.nodes[p] == nil; p = parent(p) {
		t.set(p, &node{name: p, at: pos, typ: tar.TypeDir, mode: 0o755})
	}
}

// ensureDir adds name as a directory, and its missing parents, unless
// something is there already (or the path cannot be made: through a file,
// or with ".."). Symlinked parents are followed inside the tree.
func (t *tree) ensureDir(name string) {
	name, err := cleanName(name)
	if err != nil || name == "" {
		return
	}
	if name, err = t.resolveParents(name); err != nil {
		return
	}
	if t.nodes[name] != nil || t.checkParents(name) != nil {
		return
	}
	pos := at{-1, -1}
	t.makeParents(name, pos)
	t.set(name, &node{name: name, at: pos, typ: tar.TypeDir, mode: 0o755})
}

// remove deletes name and everything below it.
func (t *tree) remove(name string) {
	if n := t.nodes[name]; n != nil {
		n.dead = true
		if n.isDir() {
			t.removeBelow(name, -1)
		}
		t.drop(name)
	}
}

// removeBelow deletes what lies below dir, from layers under layer (all of
// it when layer is -1). It visits the paths below dir only, and, within
// one layer, each at most once: what it has cleaned is marked so.
func (t *tree) removeBelow(dir string, layer int) {
	if l, ok := t.clean[dir]; ok && layer >= 0 && l == layer {
		return
	}
	t.removeKids(dir, layer)
	if layer >= 0 {
		t.clean[dir] = layer
	}
}

func (t *tree) removeKids(dir string, layer int) {
	ks := t.kids[dir]
	if len(ks) == 0 {
		return
	}
	// Copied: the loop deletes from the set.
	names := make([]string, 0, len(ks))
	for k := range ks {
		names = append(names, k)
	}
	for _, name := range names {
		t.whiteoutVisits++
		if l, ok := t.clean[name]; !ok || layer < 0 || l != layer {
			t.removeKids(name, layer)
			if layer >= 0 {
				t.clean[name] = layer
			}
		}
		if n := t.nodes[name]; n != nil && (layer < 0 || n.at.layer < layer) {
			n.dead = true
			delete(t.nodes, name)
		}
		t.unindex(name)
	}
}

// dirs lists every directory to write, sorted: those of the layers and the
// parents nobody listed.
func (t *tree) dirs() []string {
	set := map[string]bool{}
	for name, n := range t.nodes {
		if n.isDir() {
			set[name] = true
		}
		for p := parent(name); p != "" && !set[p]; p = parent(p) {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// write is what the second pass does with one tar entry.
type write struct {
	name string
	// meta holds the inode's type, mode and owner.
	meta *node
	// data says the entry's tar data is copied: a regular file, or the
	// first name of a hard-linked file.
	data bool
	// group, when set, is shared by every name of a hard-linked file.
	group *inode
}

// inode is a hard-linked file: how many names it has, and the first
// written, which carries the data.
type inode struct {
	nlink uint32
	first string
}

// plan maps every surviving non-directory entry to its write.
func (t *tree) plan() map[at]*write {
	plan := map[at]*write{}
	for name, n := range t.nodes {
		if n.isDir() || n.group != nil {
			continue
		}
		plan[n.at] = &write{name: name, meta: n, data: n.typ == tar.TypeReg}
	}
	for _, g := range t.groups {
		var live []*node
		for _, m := range g.members {
			if !m.dead {
				live = append(live, m)
			}
		}
		if len(live) == 0 {
			continue
		}
		slices.SortFunc(live, func(x, y *node) int {
			if x.at.layer != y.at.layer {
				return x.at.layer - y.at.layer
			}
			return x.at.seq - y.at.seq
		})
		id := &inode{nlink: uint32(len(live))}
		// The data lives in the source's tar entry, which comes before any
		// link to it; if the source's own name is gone, the first name left
		// is written there.
		carrier := live[0]
		plan[g.source.at] = &write{name: carrier.name, meta: g.source, data: true, group: id}
		for _, m := range live {
			if m != carrier {
				plan[m.at] = &write{name: m.name, meta: g.source, group: id}
			}
		}
	}
	return plan
}

// copyLayer is the second pass over layer li: it writes the planned
// entries, removing them from plan, and adds their extended attributes to
// the manifest.
func copyLayer(a *Archive, prefixes []string, li int, l Layer, plan map[at]*write, manifest *xattrManifest) error {
	return eachEntry(l, func(seq int, h *tar.Header, data io.Reader) error {
		return copyEntry(a, prefixes, li, seq, data, plan, manifest)
	})
}

// copyEntry writes entry seq of layer li (data its tar data) if plan has
// it, and removes it from plan.
func copyEntry(a *Archive, prefixes []string, li, seq int, data io.Reader, plan map[at]*write, manifest *xattrManifest) error {
	w := plan[at{li, seq}]
	if w == nil {
		return nil
	}
	delete(plan, at{li, seq})
	m := w.meta
	e := Entry{
		Name: join(prefixes[0], w.name),
		Mode: cpioType(m.typ) | uint32(m.mode)&cpio.ModePerm,
		UID:  uint32(m.uid), GID: uint32(m.gid),
		Linkname: m.linkname,
		Devmajor: uint32(m.major), Devminor: uint32(m.minor),
	}
	shared := len(prefixes) > 1 && (w.group != nil || m.typ == tar.TypeReg)
	if w.group != nil {
		e.Mode = cpio.ModeRegular | uint32(m.mode)&cpio.ModePerm
		e.Linkname = ""
		e.Nlink = w.group.nlink * uint32(len(prefixes))
		switch {
		case w.data:
			w.group.first = e.Name
		case w.group.first == "":
			return fmt.Errorf("%s: hard link comes before the file's data", e.Name)
		default:
			e.HardLink = w.group.first
		}
	} else if shared {
		e.Nlink = uint32(len(prefixes))
	}
	if w.data {
		e.Size = m.size
	}
	if err := a.Entry(e, data); err != nil {
		return err
	}
	// An inode's attributes are listed once: under the name that
	// carries its data.
	if w.group == nil || w.data {
		manifest.add(e.Name, m.xattrs)
	}
	// The same entry under the other prefixes: a regular file is
	// another name of the inode just written, with no data; anything
	// else is written again.
	first := e.Name
	if w.group != nil {
		first = w.group.first
	}
	for _, prefix := range prefixes[1:] {
		e.Name = join(prefix, w.name)
		if shared {
			e.HardLink, e.Size = first, 0
		}
		if err := a.Entry(e, nil); err != nil {
			return err
		}
		if !shared {
			manifest.add(e.Name, m.xattrs)
		}
	}
	return nil
}

// rdinit is the file the kernel runs from an initrd: /init.
const rdinit = "init"

// errCopied stops a read of a layer (eachEntry) once the entry sought is
// taken: copyFirst, squashfsInit.
var errCopied = errors.New("copied")

// copyFirst writes the file name (of the image's root) before every other
// file, when the layers have it as a file.
//
// Why /init: a VM whose memory cannot hold the unpacked initrd gets part of
// it; the kernel stops unpacking at the first file that does not fit and
// boots on. With /init whole, keel's PID 1 runs, finds segments missing
// and says how much memory the VM needs. Were /init cut instead, the
// kernel would try /sbin/init, /etc/init, /bin/init and /bin/sh; written
// first, /init leaves none of them behind to run a partial system, and the
// kernel panics, which keel run reports.
//
// The layer is read up to the entry; the full pass over it later checks
// its digest.
func copyFirst(a *Archive, prefixes []string, layers []Layer, plan map[at]*write, manifest *xattrManifest, name string) error {
	for pos, w := range plan {
		if w.name != name || !w.data {
			continue
		}
		one := map[at]*write{pos: w}
		err := eachEntry(layers[pos.layer], func(seq int, h *tar.Header, data io.Reader) error {
			if seq != pos.seq {
				return nil
			}
			if err := copyEntry(a, prefixes, pos.layer, seq, data, one, manifest); err != nil {
				return err
			}
			return errCopied
		})
		if !errors.Is(err, errCopied) {
			if err == nil {
				err = fmt.Errorf("%s: vanished between two reads of %s", name, layers[pos.layer].Name)
			}
			return err
		}
		delete(plan, pos)
		return nil
	}
	return nil
}

func cpioType(typ byte) uint32 {
	switch typ {
	case tar.TypeDir:
		return cpio.ModeDir
	case tar.TypeSymlink:
		return cpio.ModeSymlink
	case tar.TypeChar:
		return cpio.ModeChar
	case tar.TypeBlock:
		return cpio.ModeBlock
	case tar.TypeFifo:
		return cpio.ModeFIFO
	}
	return cpio.ModeRegular
}

// eachEntry calls fn for every header of the layer's tar, numbered from 0.
//
// The error of Close counts: an image's layer reader checks the blob's
// digest there, once the tar reader has stopped at the archive's end
// marker with the rest of the blob unread.
func eachEntry(l Layer, fn func(seq int, h *tar.Header, data io.Reader) error) (err error) {
	rc, err := l.Open()
	if err != nil {
		return fmt.Errorf("open %s: %w", l.Name, err)
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("read %s: %w", l.Name, cerr)
		}
	}()
	tr := tar.NewReader(rc)
	for seq := 0; ; seq++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", l.Name, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// A PAX global header names no file: git archive writes one
			// holding only the commit id as a comment. Its records are
			// not applied to later headers (archive/tar does not keep
			// global state, and no image tool relies on it). Skipped in
			// the one loop both passes use, so their entry numbers agree.
			continue
		}
		if err := fn(seq, h, tr); err != nil {
			return fmt.Errorf("%s: %w", l.Name, err)
		}
	}
}

// cleanName makes a tar entry name relative to the image root. "/x" and
// "./x" are "x"; the root itself is ""; a ".." anywhere is refused rather
// than resolved, since no honest layer needs one.
func cleanName(name string) (string, error) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%s: path with \"..\" refused", name)
		}
	}
	c := path.Clean("/" + name)
	return strings.TrimPrefix(c, "/"), nil
}
