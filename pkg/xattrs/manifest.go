// Package xattrs is the manifest of extended attributes that `keel build`
// writes into the initrd and keel's PID 1 applies at boot. The newc cpio
// format has no field for extended attributes and Linux sets none when it
// unpacks an initramfs, so file capabilities (security.capability, as on
// Debian's ping) would otherwise be lost.
//
// Both sides import this package, so it depends on the standard library and
// golang.org/x/sys only: nothing of the build's registry code.
//
// # Format, version 1
//
// A manifest is UTF-8 text, one entry a line, each line ending in "\n":
//
//	keel-xattrs 1
//	"usr/bin/ping" "security.capability" "\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
//
// The first line names the format and its version. Each other line is a
// path, an attribute name and its value, each a double-quoted Go string
// literal (strconv.Quote), separated by one space. Quoting keeps any byte
// of a name or value, newlines included, and keeps the file readable with
// cat. Paths are relative to the root the manifest describes (the initrd's
// root: "containers/onboot/000-x/rootfs/bin/ping"), clean, with no ".."; a
// path may have several lines, one per attribute.
package xattrs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
)

// Dir is the directory of the initrd, relative to its root, that holds one
// manifest per segment of the initrd (segments are made and cached apart,
// so they cannot share one file). PID 1 applies every file in it.
const Dir = "etc/keel/xattrs.d"

// header is the first line of a manifest: the format and its version.
const header = "keel-xattrs 1"

// Limits of Linux's xattr syscalls (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const (
	MaxNameLen  = 255
	MaxValueLen = 65536
)

// Entry is one attribute of one file.
type Entry struct {
	// Path is the file's path, relative to the root the manifest is
	// applied to.
	Path  string
	Name  string
	Value []byte
}

// FileName is the name, in Dir, of the manifest of the tree unpacked at
// tree ("" for the initrd's root): the tree's absolute path, escaped as a
// URL path segment so that no two trees share a name ("%2F" for the root,
// "%2Fcontainers%2Fonboot%2F000-x%2Frootfs" for a bundle). A name too long
// for a directory entry is replaced by its digest, which is as unique.
func FileName(tree string) string {
	name := url.PathEscape("/" + tree)
	if len(name) > 200 {
		sum := sha256.Sum256([]byte(name))
		return "long-" + hex.EncodeToString(sum[:])
	}
	return name
}

// Encode writes entries as a manifest, in the order given.
func Encode(entries []Entry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for _, e := range entries {
		if err := e.Check(); err != nil {
			return nil, err
		}
		b.WriteString(strconv.Quote(e.Path))
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(e.Name))
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(string(e.Value)))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// ReadFile reads and parses the manifest in file; errors name the file.
func ReadFile(file string) ([]Entry, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	es, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return es, nil
}

// Parse reads a manifest. It takes all of it or nothing: an error names the
// line, and the entry's path when it got that far.
func Parse(b []byte) ([]Entry, error) {
	text, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return nil, errors.New("not a keel xattrs manifest: no final newline")
	}
	lines := strings.Split(text, "\n")
	if lines[0] != header {
		if v, ok := strings.CutPrefix(lines[0], "keel-xattrs "); ok {
			return nil, fmt.Errorf("line 1: manifest version %q, this keel reads version 1", v)
		}
		return nil, fmt.Errorf("line 1: not a keel xattrs manifest: %q", truncate(lines[0]))
	}
	entries := make([]Entry, 0, len(lines)-1)
	for i, line := range lines[1:] {
		e, err := parseLine(line)
		if err != nil {
			if e.Path != "" {
				return nil, fmt.Errorf("line %d (%q): %w", i+2, e.Path, err)
			}
			return nil, fmt.Errorf("line %d: %w", i+2, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// parseLine reads `"path" "name" "value"`. On error, the entry holds what
// was read, for the message.
func parseLine(line string) (Entry, error) {
	var e Entry
	var fields [3]string
	rest := line
	for i, what := range []string{"path", "name", "value"} {
		if i > 0 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, " "); !ok {
				return e, fmt.Errorf("want one space before the %s", what)
			}
		}
		s, err := quoted(rest)
		if err != nil {
			return e, fmt.Errorf("%s: %w", what, err)
		}
		rest = rest[len(s):]
		fields[i], _ = strconv.Unquote(s)
		if i == 0 {
			e.Path = fields[0]
		}
	}
	if rest != "" {
		return e, fmt.Errorf("unexpected %q after the value", truncate(rest))
	}
	e.Name, e.Value = fields[1], []byte(fields[2])
	return e, e.Check()
}

// quoted returns the double-quoted string literal s begins with.
func quoted(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", fmt.Errorf("want a double-quoted string, got %q", truncate(s))
	}
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", fmt.Errorf("bad quoted string %q", truncate(s))
	}
	return q, nil
}

// Check says whether the entry can be applied: a path that stays inside
// the root, a name Linux could accept, a value within its size limit.
func (e Entry) Check() error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	if err := CheckName(e.Name); err != nil {
		return err
	}
	if len(e.Value) > MaxValueLen {
		return fmt.Errorf("%s: value of %d bytes, more than Linux's %d", e.Name, len(e.Value), MaxValueLen)
	}
	return nil
}

// CheckPath accepts a clean relative path with no ".." (not the root
// itself, whose attributes the manifest does not set).
func CheckPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q holds a NUL byte", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q leaves the root", p)
	}
	return nil
}

// CheckName accepts "namespace.name", as Linux requires, within its length
// limit. Which namespaces a filesystem takes is the kernel's to say.
func CheckName(name string) error {
	ns, rest, ok := strings.Cut(name, ".")
	switch {
	case !ok || ns == "" || rest == "":
		return fmt.Errorf("attribute name %q is not namespace.name", truncate(name))
	case len(name) > MaxNameLen:
		return fmt.Errorf("attribute name %q is longer than %d bytes", truncate(name), MaxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("attribute name %q holds a NUL byte", truncate(name))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
