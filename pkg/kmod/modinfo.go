// Package kmod reads what a Linux kernel module says about itself and works
// out which modules a set of modules needs.
//
// It reads a module's .modinfo section directly with debug/elf, so neither
// the build host nor PID 1 needs modinfo, depmod or modprobe. The build uses
// it to keep only the modules a guest needs; PID 1 uses it to load a module
// after its dependencies.
package kmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Info is what a module's .modinfo section declares.
type Info struct {
	// Name is the module's name as the kernel knows it (underscores, never
	// dashes: crc32c-intel.ko is crc32c_intel).
	Name string
	// Depends lists the modules whose symbols this one uses; they must be
	// loaded first.
	Depends []string
	// SoftPre and SoftPost are the "softdep=pre: ... post: ..." modules:
	// wanted before or after this one, but not needed to load it. They may
	// name an alias rather than a module.
	SoftPre, SoftPost []string
	// Aliases are the names and device patterns (e.g. "pci:v00001AF4d*")
	// this module answers to.
	Aliases []string
	// Vermagic is the kernel release and build options the module was built
	// for; the kernel refuses a module whose vermagic does not match.
	Vermagic string
	License  string
	// Exports are the symbols the module exports to others (ReadExports),
	// for modules.symbols; ReadInfo leaves them empty.
	Exports []string
}

// Release is the kernel release at the front of Vermagic, e.g.
// "6.1.0-56-cloud-amd64".
func (i *Info) Release() string {
	r, _, _ := strings.Cut(i.Vermagic, " ")
	return r
}

// ErrNoModinfo is returned for an ELF file that has no .modinfo section,
// i.e. that is not a kernel module.
var ErrNoModinfo = errors.New("no .modinfo section: not a kernel module")

// ReadInfo reads the .modinfo section of the kernel module in r.
func ReadInfo(r io.ReaderAt) (*Info, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, ErrNoModinfo
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo section: %w", err)
	}
	return ParseModinfo(data)
}

// ReadInfoFile reads the .modinfo section of the kernel module at path.
// Compressed modules (.ko.xz, .ko.zst) are not read: decompress them first.
func ReadInfoFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := ReadInfo(f)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	return info, nil
}

// ParseModinfo parses the contents of a .modinfo section: NUL-separated
// key=value strings, with keys such as alias repeated. Keys keel has no use
// for (parm, description, ...) are ignored.
func ParseModinfo(data []byte) (*Info, error) {
	info := &Info{}
	for _, field := range bytes.Split(data, []byte{0}) {
		// The section is padded with NULs between strings for alignment.
		if len(field) == 0 {
			continue
		}
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			return nil, fmt.Errorf("malformed .modinfo entry %q: no '='", field)
		}
		switch key {
		case "name":
			info.Name = value
		case "depends":
			info.Depends = appendList(info.Depends, strings.Split(value, ","))
		case "softdep":
			pre, post := parseSoftdep(value)
			info.SoftPre = appendList(info.SoftPre, pre)
			info.SoftPost = appendList(info.SoftPost, post)
		case "alias":
			info.Aliases = append(info.Aliases, value)
		case "vermagic":
			info.Vermagic = strings.TrimSpace(value)
		case "license":
			info.License = value
		}
	}
	return info, nil
}

// parseSoftdep splits "pre: a b post: c" into its two lists.
func parseSoftdep(s string) (pre, post []string) {
	var into *[]string
	for _, word := range strings.Fields(s) {
		switch word {
		case "pre:":
			into = &pre
		case "post:":
			into = &post
		default:
			if into != nil {
				*into = append(*into, word)
			}
		}
	}
	return pre, post
}

// appendList appends the non-empty names of list, normalized.
func appendList(dst, list []string) []string {
	for _, n := range list {
		if n = strings.TrimSpace(n); n != "" {
			dst = append(dst, NormalizeName(n))
		}
	}
	return dst
}

// NormalizeName turns a module file name or a user-written module name into
// the kernel's name for it: the directory and a .ko, .ko.xz, .ko.gz or
// .ko.zst suffix are dropped, and dashes become underscores, as modprobe
// does ("kernel/arch/x86/crypto/crc32c-intel.ko" -> "crc32c_intel").
func NormalizeName(s string) string {
	s = path.Base(s)
	for _, ext := range moduleExts {
		if strings.HasSuffix(s, ext) {
			s = strings.TrimSuffix(s, ext)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// moduleExts are the file name endings of kernel modules, compressed or not.
var moduleExts = []string{".ko", ".ko.xz", ".ko.gz", ".ko.zst"}

// IsModuleFile reports whether name is a kernel module file, compressed or
// not.
func IsModuleFile(name string) bool {
	for _, ext := range moduleExts {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}
