package kmod

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// The .bin files depmod writes next to modules.dep, modules.alias,
// modules.symbols and modules.builtin are what kmod's modprobe reads: it
// never parses the text files (busybox's modprobe reads only those). Each
// is a trie of keys, each key with a list of values ordered by a priority,
// laid out as kmod's libkmod-index.c reads it:
//
//	header: magic, version, offset of the root node (uint32, big-endian)
//	node:   [prefix NUL] [first last child-offsets...] [count (priority value NUL)...]
//
// A node's offset carries flags in its top four bits saying which parts it
// has. A chain of nodes with one child and no values is stored as one node
// whose prefix holds the chain's characters.
const (
	binIndexMagic   = 0xB007F457
	binIndexVersion = 2<<16 | 1

	binNodePrefix = 0x80000000
	binNodeValues = 0x40000000
	binNodeChilds = 0x20000000
	binNodeMask   = 0x0FFFFFFF

	// binKeyMax bounds the bytes of a key: kmod's trie nodes have
	// children for ASCII only.
	binKeyMax = 128
)

// binIndex is a trie being built, to be written by bytes.
type binIndex struct {
	root binNode
}

type binNode struct {
	children map[byte]*binNode
	values   []binValue
}

type binValue struct {
	priority uint32
	value    string
}

// add adds value under key, unless the key holds it already; a key with a
// byte outside ASCII is left out, as kmod cannot hold it.
func (x *binIndex) add(key, value string, priority uint32) {
	for i := 0; i < len(key); i++ {
		if key[i] == 0 || key[i] >= binKeyMax {
			return
		}
	}
	n := &x.root
	for i := 0; i < len(key); i++ {
		if n.children == nil {
			n.children = map[byte]*binNode{}
		}
		c := n.children[key[i]]
		if c == nil {
			c = &binNode{}
			n.children[key[i]] = c
		}
		n = c
	}
	for _, v := range n.values {
		if v.value == value {
			return
		}
	}
	n.values = append(n.values, binValue{priority, value})
}

// bytes lays the trie out: children before their parent, so that each
// node knows its children's offsets, and the root's offset in the header.
func (x *binIndex) bytes() []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 12)) // the header, filled in last
	root := x.write(&b, &x.root)
	out := b.Bytes()
	binary.BigEndian.PutUint32(out[0:], binIndexMagic)
	binary.BigEndian.PutUint32(out[4:], binIndexVersion)
	binary.BigEndian.PutUint32(out[8:], root)
	return out
}

// write writes n and what is under it, and returns n's offset with its
// flags.
func (x *binIndex) write(b *bytes.Buffer, n *binNode) uint32 {
	// Fold the chain of single-child nodes without values below n into
	// one prefix.
	var prefix []byte
	for len(n.values) == 0 && len(n.children) == 1 {
		for c, child := range n.children {
			prefix = append(prefix, c)
			n = child
		}
	}
	keys := make([]byte, 0, len(n.children))
	for c := range n.children {
		keys = append(keys, c)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	offsets := map[byte]uint32{}
	for _, c := range keys {
		offsets[c] = x.write(b, n.children[c])
	}

	off := uint32(b.Len())
	if len(prefix) > 0 {
		off |= binNodePrefix
		b.Write(prefix)
		b.WriteByte(0)
	}
	if len(keys) > 0 {
		off |= binNodeChilds
		first, last := keys[0], keys[len(keys)-1]
		b.WriteByte(first)
		b.WriteByte(last)
		for c := int(first); c <= int(last); c++ {
			binary.Write(b, binary.BigEndian, offsets[byte(c)]) // 0: no child
		}
	}
	if len(n.values) > 0 {
		off |= binNodeValues
		vs := append([]binValue(nil), n.values...)
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].priority < vs[j].priority })
		binary.Write(b, binary.BigEndian, uint32(len(vs)))
		for _, v := range vs {
			binary.Write(b, binary.BigEndian, v.priority)
			b.WriteString(v.value)
			b.WriteByte(0)
		}
	}
	return off
}
