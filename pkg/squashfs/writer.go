// Package squashfs writes squashfs 4.0 images (the format Linux mounts
// read-only) as a stream of entries: each file's data is compressed and
// written as it comes, and only the headers are held until Close writes
// the inode, directory and id tables and the superblock. It keeps what a
// container image holds: owners, all mode bits (setuid, setgid, sticky),
// hard links (one inode, the data once), symlinks, device nodes and FIFOs.
// The output depends only on the entries and the times given, so images
// are reproducible.
//
// What it leaves out: fragments (a file's tail is a short block of its
// own), the NFS export table, extended attributes and compressor options.
// Data and metadata are zlib ("gzip" in squashfs terms), the compressor
// every squashfs-enabled kernel has.
package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// File type bits of Mode (as in stat(2)).
const (
	ModeType    = 0o170000
	ModeSocket  = 0o140000
	ModeSymlink = 0o120000
	ModeRegular = 0o100000
	ModeBlock   = 0o060000
	ModeDir     = 0o040000
	ModeChar    = 0o020000
	ModeFIFO    = 0o010000
	ModePerm    = 0o7777
)

// BlockSize is the data block size, mksquashfs's default.
const BlockSize = 128 << 10

const (
	blockLog      = 17
	metadataSize  = 8192
	invalid64     = ^uint64(0)
	noFragment    = ^uint32(0)
	noXattr       = ^uint32(0)
	compZlib      = 1
	flagNoFrags   = 0x0010
	flagNoXattrs  = 0x0200
	dataUncompBit = 1 << 24
	// Basic and extended inode types.
	typeDir, typeFile, typeSymlink, typeBlock, typeChar, typeFIFO, typeSocket = 1, 2, 3, 4, 5, 6, 7
	typeExtDir, typeExtFile                                                   = 8, 9
)

// File is one entry of the image.
type File struct {
	// Name is the path in the image, relative, without a leading "/";
	// its parent directory must have been added before.
	Name     string
	Mode     uint32
	UID, GID uint32
	Mtime    int64
	// Size is a regular file's data length.
	Size int64
	// Linkname is a symlink's target.
	Linkname string
	// Major and Minor are a device node's numbers.
	Major, Minor uint32
	// HardLink, when set, names an earlier regular file of which this
	// entry is another name: no data, the same inode.
	HardLink string
}

// node is an inode of the image, with what is known of it so far.
type node struct {
	File
	blocksStart uint64
	blockSizes  []uint32
	nlink       uint32
	kids        map[string]*node // a directory's entries, by base name
	// Set while the tables are written.
	number uint32
	ref    uint64 // inode table block << 16 | offset
	parent *node
}

func (n *node) isDir() bool { return n.Mode&ModeType == ModeDir }

// Writer writes one squashfs image to an io.WriterAt from offset 0.
type Writer struct {
	w        io.WriterAt
	mkfsTime int64
	off      int64 // where the next data block goes
	root     *node
	nodes    map[string]*node
	closed   bool
	buf      []byte
	zbuf     bytes.Buffer
	zw       *zlib.Writer
}

// superblockSize is the superblock's length; data follows it.
const superblockSize = 96

// NewWriter starts an image whose root directory is owned by root with
// mode 0755 and mtime mkfsTime, also the superblock's time.
func NewWriter(w io.WriterAt, mkfsTime int64) *Writer {
	root := &node{File: File{Mode: ModeDir | 0o755, Mtime: mkfsTime}, kids: map[string]*node{}}
	return &Writer{w: w, mkfsTime: mkfsTime, off: superblockSize, root: root,
		nodes: map[string]*node{"": root}, buf: make([]byte, BlockSize)}
}

// Add adds f; data holds a regular file's f.Size bytes (nil for other
// entries and hard links). A directory added again keeps its first
// owner and mode.
func (sw *Writer) Add(f File, data io.Reader) error {
	if sw.closed {
		return errors.New("squashfs: add after close")
	}
	name := strings.Trim(f.Name, "/")
	if name == "" || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("squashfs: invalid name %q", f.Name)
	}
	f.Name = name
	dir, base := path.Split(name)
	parent := sw.nodes[strings.TrimSuffix(dir, "/")]
	if parent == nil || !parent.isDir() {
		return fmt.Errorf("squashfs: %s: parent directory not added", name)
	}
	if old := parent.kids[base]; old != nil {
		if old.isDir() && f.Mode&ModeType == ModeDir {
			return nil
		}
		return fmt.Errorf("squashfs: %s added twice", name)
	}
	if f.HardLink != "" {
		target := sw.nodes[f.HardLink]
		if target == nil || target.Mode&ModeType != ModeRegular {
			return fmt.Errorf("squashfs: %s: hard link to %s, which is not a file added before", name, f.HardLink)
		}
		target.nlink++
		parent.kids[base] = target
		return nil
	}
	n := &node{File: f, nlink: 1}
	switch f.Mode & ModeType {
	case ModeDir:
		n.kids = map[string]*node{}
	case ModeRegular:
		if err := sw.writeData(n, data); err != nil {
			return fmt.Errorf("squashfs: %s: %w", name, err)
		}
	case ModeSymlink, ModeChar, ModeBlock, ModeFIFO, ModeSocket:
	default:
		return fmt.Errorf("squashfs: %s: unknown file type %#o", name, f.Mode&ModeType)
	}
	parent.kids[base] = n
	sw.nodes[name] = n
	return nil
}

// writeData compresses a file's data block by block and writes it at
// the end of the data written so far. An executable (ELF) is written
// uncompressed: see storedRaw.
func (sw *Writer) writeData(n *node, data io.Reader) error {
	n.blocksStart = uint64(sw.off)
	raw := false
	for left := n.Size; left > 0; {
		b := sw.buf[:min(left, BlockSize)]
		if _, err := io.ReadFull(data, b); err != nil {
			return fmt.Errorf("read data: %w", err)
		}
		if left == n.Size {
			raw = storedRaw(b)
		}
		left -= int64(len(b))
		out, compressed := b, false
		if !raw {
			var err error
			if out, compressed, err = sw.compress(b); err != nil {
				return err
			}
		}
		size := uint32(len(out))
		if !compressed {
			size |= dataUncompBit
		}
		if _, err := sw.w.WriteAt(out, sw.off); err != nil {
			return err
		}
		sw.off += int64(len(out))
		n.blockSizes = append(n.blockSizes, size)
	}
	return nil
}

// storedRaw reports whether a file whose data begins with first is
// written without compression: ELF files, the programs and libraries.
// A program's pages are faulted in scattered as it starts and runs, and
// each fault on a compressed block inflates all of its 128 KiB; the
// reads of whole files (images, configs) gain from compression, the
// faults of a program pay for it over and over. Under TCG, where zlib's
// inflate is slow, keel's bench image spent a third of a second more from
// PID 1 to its onboot containers done with its executables compressed.
// The disk grows by what compression saved on them.
func storedRaw(first []byte) bool {
	return bytes.HasPrefix(first, []byte("\x7fELF"))
}

// compress returns b zlib-compressed, or b itself when that is not
// smaller.
func (sw *Writer) compress(b []byte) ([]byte, bool, error) {
	sw.zbuf.Reset()
	if sw.zw == nil {
		sw.zw = zlib.NewWriter(&sw.zbuf)
	} else {
		sw.zw.Reset(&sw.zbuf)
	}
	if _, err := sw.zw.Write(b); err != nil {
		return nil, false, err
	}
	if err := sw.zw.Close(); err != nil {
		return nil, false, err
	}
	if sw.zbuf.Len() >= len(b) {
		return b, false, nil
	}
	return sw.zbuf.Bytes(), true, nil
}

// metadata is a metadata table as it is written: 8 KiB blocks, each
// compressed on its own with a two-byte header.
type metadata struct {
	sw   *Writer
	out  bytes.Buffer // the blocks done
	cur  []byte       // the block being filled
	errs error
}

// pos is where the next byte goes: the start of its block in the table,
// and its offset in the block's uncompressed bytes.
func (m *metadata) pos() (block uint64, offset int) { return uint64(m.out.Len()), len(m.cur) }

func (m *metadata) write(b []byte) {
	for len(b) > 0 {
		n := min(len(b), metadataSize-len(m.cur))
		m.cur = append(m.cur, b[:n]...)
		b = b[n:]
		if len(m.cur) == metadataSize {
			m.flush()
		}
	}
}

func (m *metadata) flush() {
	if len(m.cur) == 0 {
		return
	}
	out, compressed, err := m.sw.compress(m.cur)
	if err != nil {
		m.errs = errors.Join(m.errs, err)
		return
	}
	hdr := uint16(len(out))
	if !compressed {
		hdr |= 0x8000
	}
	binary.Write(&m.out, binary.LittleEndian, hdr)
	m.out.Write(out)
	m.cur = m.cur[:0]
}

// Close writes the tables and the superblock.
func (sw *Writer) Close() error {
	if sw.closed {
		return nil
	}
	sw.closed = true
	// Inode numbers, in the order the tables are written: each
	// directory's entries (sorted) before the directory itself.
	var order []*node
	var number uint32
	var walk func(d *node)
	walk = func(d *node) {
		for _, name := range sortedNames(d) {
			k := d.kids[name]
			if k.number != 0 {
				continue // a hard link's inode, numbered at its first name
			}
			if k.isDir() {
				k.parent = d
				walk(k)
			} else {
				number++
				k.number = number
				order = append(order, k)
			}
		}
		number++
		d.number = number
		order = append(order, d)
	}
	walk(sw.root)
	count := number

	ids := map[uint32]uint16{}
	var idList []uint32
	idx := func(id uint32) uint16 {
		if i, ok := ids[id]; ok {
			return i
		}
		ids[id] = uint16(len(idList))
		idList = append(idList, id)
		return ids[id]
	}
	inodes, dirs := &metadata{sw: sw}, &metadata{sw: sw}
	for _, n := range order {
		if len(idList) > 65535 {
			return errors.New("squashfs: more than 65535 owners")
		}
		var b bytes.Buffer
		le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
		typ := basicType(n.Mode)
		var body bytes.Buffer
		ble := func(v any) { binary.Write(&body, binary.LittleEndian, v) }
		switch n.Mode & ModeType {
		case ModeDir:
			dirBlock, dirOffset := dirs.pos()
			size := writeListing(dirs, n) + 3
			subdirs := uint32(0)
			for _, k := range n.kids {
				if k.isDir() {
					subdirs++
				}
			}
			parent := count + 1 // the root's parent, as mksquashfs has it
			if n.parent != nil {
				parent = n.parent.number
			}
			if size <= 0xffff && dirBlock <= 0xffffffff {
				ble(uint32(dirBlock))
				ble(2 + subdirs)
				ble(uint16(size))
				ble(uint16(dirOffset))
				ble(parent)
			} else {
				typ = typeExtDir
				ble(2 + subdirs)
				ble(uint32(size))
				ble(uint32(dirBlock))
				ble(parent)
				ble(uint16(0)) // no index
				ble(uint16(dirOffset))
				ble(noXattr)
			}
		case ModeRegular:
			if n.nlink == 1 && n.Size < 1<<32 && n.blocksStart < 1<<32 {
				ble(uint32(n.blocksStart))
				ble(noFragment)
				ble(uint32(0))
				ble(uint32(n.Size))
			} else {
				typ = typeExtFile
				ble(n.blocksStart)
				ble(uint64(n.Size))
				ble(uint64(0)) // no sparse bytes
				ble(n.nlink)
				ble(noFragment)
				ble(uint32(0))
				ble(noXattr)
			}
			ble(n.blockSizes)
		case ModeSymlink:
			ble(n.nlink)
			ble(uint32(len(n.Linkname)))
			body.WriteString(n.Linkname)
		case ModeChar, ModeBlock:
			ble(n.nlink)
			// The kernel's new_encode_dev, which squashfs inodes hold.
			ble(n.Minor&0xff | n.Major<<8 | (n.Minor&^0xff)<<12)
		default:
			ble(n.nlink)
		}
		le(uint16(typ))
		le(uint16(n.Mode & ModePerm))
		le(idx(n.UID))
		le(idx(n.GID))
		le(uint32(n.Mtime))
		le(n.number)
		b.Write(body.Bytes())
		block, offset := inodes.pos()
		n.ref = block<<16 | uint64(offset)
		inodes.write(b.Bytes())
	}
	inodes.flush()
	dirs.flush()
	if err := errors.Join(inodes.errs, dirs.errs); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}

	inodeStart := uint64(sw.off)
	dirStart := inodeStart + uint64(inodes.out.Len())
	idBlocksStart := dirStart + uint64(dirs.out.Len())
	idm := &metadata{sw: sw}
	var idBytes bytes.Buffer
	binary.Write(&idBytes, binary.LittleEndian, idList)
	var lookup []uint64
	for b := idBytes.Bytes(); len(b) > 0; {
		n := min(len(b), metadataSize)
		block, _ := idm.pos()
		lookup = append(lookup, idBlocksStart+block)
		idm.write(b[:n])
		idm.flush()
		b = b[n:]
	}
	if idm.errs != nil {
		return fmt.Errorf("squashfs: %w", idm.errs)
	}
	idTableStart := idBlocksStart + uint64(idm.out.Len())
	var tables bytes.Buffer
	tables.Write(inodes.out.Bytes())
	tables.Write(dirs.out.Bytes())
	tables.Write(idm.out.Bytes())
	binary.Write(&tables, binary.LittleEndian, lookup)
	if _, err := sw.w.WriteAt(tables.Bytes(), sw.off); err != nil {
		return fmt.Errorf("squashfs: write tables: %w", err)
	}
	bytesUsed := uint64(sw.off) + uint64(tables.Len())

	var sb bytes.Buffer
	le := func(v any) { binary.Write(&sb, binary.LittleEndian, v) }
	le(uint32(0x73717368)) // "hsqs"
	le(count)
	le(uint32(sw.mkfsTime))
	le(uint32(BlockSize))
	le(uint32(0)) // fragments
	le(uint16(compZlib))
	le(uint16(blockLog))
	le(uint16(flagNoFrags | flagNoXattrs))
	le(uint16(len(idList)))
	le(uint16(4))
	le(uint16(0))
	le(sw.root.ref)
	le(bytesUsed)
	le(idTableStart)
	le(invalid64) // xattr id table
	le(inodeStart)
	le(dirStart)
	le(idBlocksStart) // fragment table: empty, where the next table starts
	le(invalid64)     // export table
	if _, err := sw.w.WriteAt(sb.Bytes(), 0); err != nil {
		return fmt.Errorf("squashfs: write superblock: %w", err)
	}
	// Images are padded to 4 KiB, as mksquashfs does, so that they can be
	// used as block devices.
	if pad := (4096 - bytesUsed%4096) % 4096; pad > 0 {
		if _, err := sw.w.WriteAt(make([]byte, pad), int64(bytesUsed)); err != nil {
			return fmt.Errorf("squashfs: pad: %w", err)
		}
	}
	return nil
}

func sortedNames(d *node) []string {
	names := make([]string, 0, len(d.kids))
	for name := range d.kids {
		names = append(names, name)
	}
	slices.Sort(names) // byte order: the kernel's lookup stops past the name
	return names
}

func basicType(mode uint32) int {
	switch mode & ModeType {
	case ModeDir:
		return typeDir
	case ModeRegular:
		return typeFile
	case ModeSymlink:
		return typeSymlink
	case ModeBlock:
		return typeBlock
	case ModeChar:
		return typeChar
	case ModeFIFO:
		return typeFIFO
	}
	return typeSocket
}

// writeListing writes a directory's entries to the directory table and
// returns their length. Entries are grouped under headers: at most 256,
// whose inodes lie in one metadata block and whose numbers are within
// an int16 of the header's.
func writeListing(dirs *metadata, d *node) int {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	names := sortedNames(d)
	for i := 0; i < len(names); {
		first := d.kids[names[i]]
		block := uint32(first.ref >> 16)
		j := i + 1
		for j < len(names) && j-i < 256 {
			k := d.kids[names[j]]
			delta := int64(k.number) - int64(first.number)
			if uint32(k.ref>>16) != block || delta < -32768 || delta > 32767 {
				break
			}
			j++
		}
		le(uint32(j - i - 1))
		le(block)
		le(first.number)
		for _, name := range names[i:j] {
			k := d.kids[name]
			le(uint16(k.ref & 0xffff))
			le(int16(int64(k.number) - int64(first.number)))
			le(uint16(basicType(k.Mode)))
			le(uint16(len(name) - 1))
			b.WriteString(name)
		}
		i = j
	}
	dirs.write(b.Bytes())
	return b.Len()
}
