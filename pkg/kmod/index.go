package kmod

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// IndexPath is where the build puts the module index in the initrd,
// relative to its root. PID 1 reads it instead of running depmod.
const IndexPath = "etc/keel/modules.json"

// IndexVersion is the version of the index format; a reader refuses
// another.
const IndexVersion = 1

// Index is the module index of an initrd: for each kernel release that
// kernel.tar holds, every module with what its .modinfo declares. It is
// JSON, read with ReadIndex.
type Index struct {
	Version int             `json:"version"`
	Kernels []KernelModules `json:"kernels"`
}

// KernelModules is the module tree of one kernel release.
type KernelModules struct {
	// Release is the directory under /lib/modules, e.g.
	// "6.1.0-56-cloud-amd64".
	Release string       `json:"release"`
	Modules []IndexEntry `json:"modules"`
	// Builtin lists the modules built into the kernel (modules.builtin):
	// they need no loading.
	Builtin []string `json:"builtin,omitempty"`
}

// IndexEntry is one module of the index.
type IndexEntry struct {
	Name string `json:"name"`
	// Path is relative to /lib/modules/<release>.
	Path     string   `json:"path"`
	Depends  []string `json:"depends,omitempty"`
	SoftPre  []string `json:"softpre,omitempty"`
	SoftPost []string `json:"softpost,omitempty"`
	// Aliases are names and fnmatch-style device patterns, as the module
	// declares them (e.g. "pci:v00001AF4d00001000sv*sd*bc*sc*i*").
	Aliases []string `json:"aliases,omitempty"`
}

// NewIndexEntry makes the index entry of a module.
func NewIndexEntry(m *Module) IndexEntry {
	return IndexEntry{
		Name: m.Name, Path: m.Path,
		Depends: m.Info.Depends, SoftPre: m.Info.SoftPre, SoftPost: m.Info.SoftPost,
		Aliases: m.Info.Aliases,
	}
}

// KernelIndex makes the index entry of a whole tree.
func KernelIndex(release string, t *Tree) KernelModules {
	k := KernelModules{Release: release, Modules: []IndexEntry{}}
	for _, m := range t.Modules() {
		k.Modules = append(k.Modules, NewIndexEntry(m))
	}
	for b := range t.builtin {
		k.Builtin = append(k.Builtin, b)
	}
	sort.Strings(k.Builtin)
	return k
}

// WriteIndex writes ix as JSON, one module a line, so that a person can
// grep it and the bytes are stable.
func WriteIndex(w io.Writer, ix *Index) error {
	var b strings.Builder
	fmt.Fprintf(&b, "{\"version\":%d,\"kernels\":[", ix.Version)
	for i, k := range ix.Kernels {
		if i > 0 {
			b.WriteString(",")
		}
		rel, _ := json.Marshal(k.Release)
		builtin, _ := json.Marshal(k.Builtin)
		fmt.Fprintf(&b, "\n{\"release\":%s,\"builtin\":%s,\"modules\":[", rel, builtin)
		for j, m := range k.Modules {
			line, err := json.Marshal(m)
			if err != nil {
				return fmt.Errorf("encode module index: %w", err)
			}
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n")
			b.Write(line)
		}
		b.WriteString("]}")
	}
	b.WriteString("]}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ReadIndex reads an index written by WriteIndex.
func ReadIndex(r io.Reader) (*Index, error) {
	var ix Index
	if err := json.NewDecoder(r).Decode(&ix); err != nil {
		return nil, fmt.Errorf("read module index: %w", err)
	}
	if ix.Version != IndexVersion {
		return nil, fmt.Errorf("read module index: version %d, want %d", ix.Version, IndexVersion)
	}
	return &ix, nil
}

// Kernel returns the modules of one release (uname -r).
func (ix *Index) Kernel(release string) (*KernelModules, bool) {
	for i := range ix.Kernels {
		if ix.Kernels[i].Release == release {
			return &ix.Kernels[i], true
		}
	}
	return nil, false
}

// Tree makes the tree of these modules, to resolve names and compute
// load orders (Tree.Closure).
func (k *KernelModules) Tree() *Tree {
	ms := make([]*Module, len(k.Modules))
	for i, e := range k.Modules {
		ms[i] = &Module{Name: e.Name, Path: e.Path, Info: &Info{
			Name: e.Name, Depends: e.Depends, SoftPre: e.SoftPre, SoftPost: e.SoftPost, Aliases: e.Aliases,
		}}
	}
	return NewTree(ms, k.Builtin)
}

// Lookup returns the names of the modules with an alias that matches
// modalias (a device's /sys/.../modalias, e.g.
// "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"), sorted.
func (k *KernelModules) Lookup(modalias string) []string {
	var out []string
	for _, m := range k.Modules {
		for _, a := range m.Aliases {
			if MatchAlias(a, modalias) {
				out = append(out, m.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// MatchAlias reports whether s matches the module alias pattern, with
// fnmatch(3) rules as modprobe applies them (no special meaning for '/' or
// a leading '.'): '*' matches any run of bytes, '?' any one byte, "[...]"
// one byte of a set ("[!...]" or "[^...]" one byte not in it, with a-z
// ranges), and '\' quotes the next byte. A malformed bracket is matched
// literally.
func MatchAlias(pattern, s string) bool {
	// Iterative matching with one backtrack point for the last '*', which
	// is linear for the patterns modules declare.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if ok, width, valid := matchClass(pattern[p:], s[i]); valid {
					if ok {
						p += width
						i++
						continue
					}
				} else if s[i] == '[' {
					p++
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == s[i] {
					p += 2
					i++
					continue
				}
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the bracket expression at the start of
// pattern. valid is false when the bracket is not closed.
func matchClass(pattern string, b byte) (ok bool, width int, valid bool) {
	i := 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		c := pattern[i]
		if c == ']' && !first {
			return ok != negate, i + 1, true
		}
		first = false
		if c == '\\' && i+1 < len(pattern) {
			i++
			c = pattern[i]
		}
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			if c <= b && b <= pattern[i+2] {
				ok = true
			}
			i += 3
			continue
		}
		if c == b {
			ok = true
		}
		i++
	}
	return false, 0, false
}
