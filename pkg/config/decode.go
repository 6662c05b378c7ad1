package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/keel-os/keel/pkg/bundle"
)

// Parse decodes the YAML in data, read from file (used in messages only).
// It checks every key and type, and each entry on its own: names, image
// references, namespace values, capabilities, binds and file paths.
func Parse(file string, data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return &Config{File: file}, nil // an empty file
	} else if err != nil {
		return nil, syntaxError(file, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{Pos: Pos{File: file, Line: next.Line, Column: next.Column}, Msg: "a second YAML document: give one configuration per file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(file, err)
	}
	d := &decoder{file: file}
	cfg := &Config{File: file}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return cfg, nil // comments only, or a lone "---"
	}
	if err := checkSize(file, doc.Content[0]); err != nil {
		return nil, err
	}
	d.config(cfg, doc.Content[0])
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	cfg.Warnings = sortErrors(d.warns)
	return cfg, nil
}

// sorted is the errors in file order, whatever order the checks ran in.
func (d *decoder) sorted() Errors { return sortErrors(d.errs) }

func sortErrors(es []*Error) []*Error {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
	return es
}

// maxNodes bounds the size of a document with its aliases expanded, so that
// a few lines of anchors and aliases ("billion laughs") cannot make the
// decoder walk billions of nodes.
const maxNodes = 1 << 20

// checkSize refuses a document that expands to more than maxNodes nodes.
func checkSize(file string, root *yaml.Node) error {
	memo := map[*yaml.Node]int{}
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if s, ok := memo[n]; ok {
			return s
		}
		memo[n] = maxNodes + 1 // a cycle counts as too big
		s := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			s += size(n.Alias)
		}
		for _, c := range n.Content {
			if s > maxNodes {
				break
			}
			s += size(c)
		}
		memo[n] = min(s, maxNodes+1)
		return memo[n]
	}
	if size(root) > maxNodes {
		return &Error{Pos: Pos{File: file, Line: root.Line, Column: root.Column},
			Msg: fmt.Sprintf("the document expands to more than %d nodes (aliases of aliases?)", maxNodes)}
	}
	return nil
}

// decoder walks a yaml.Node tree and collects errors instead of stopping at
// the first one.
type decoder struct {
	file  string
	errs  Errors
	warns []*Error
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// warnf records something accepted that the user should change.
func (d *decoder) warnf(n *yaml.Node, field, format string, args ...any) {
	d.warns = append(d.warns, &Error{Pos: d.pos(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases so that anchors (&x / *x) work everywhere.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe names a node's type the way an error message says what it got.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "nothing"
}

// fields maps the keys a mapping may hold to what decodes each value.
type fields map[string]func(v *yaml.Node)

// mapping decodes a mapping node key by key. Unknown and repeated keys are
// errors at the key's position.
func (d *decoder) mapping(n *yaml.Node, field string, fs fields) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, field, "expected a mapping, got %s", describe(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, field, "expected a key, got %s", describe(k))
			continue
		}
		decode, ok := fs[k.Value]
		if !ok {
			d.errorf(k, field, "unknown key %q (%s)", k.Value, suggest(k.Value, fs))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, field, "key %q given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		decode(v)
	}
	return true
}

// suggest names the known key closest to an unknown one, or lists them
// all when there are few.
func suggest(key string, fs fields) string {
	best, dist := "", 3
	for k := range fs {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < dist || (d == dist && k < best) {
			best, dist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if len(fs) <= 10 {
		return "known keys: " + knownKeys(fs)
	}
	return "see docs/yaml.md for the keys"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func knownKeys(fs fields) string {
	keys := make([]string, 0, len(fs))
	for k := range fs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// str decodes a scalar as a string. Numbers and booleans are taken as
// written ("command: [sleep, 10]"); null, lists and mappings are errors.
func (d *decoder) str(n *yaml.Node, field string, out *string) bool {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errorf(n, field, "expected a string, got %s", describe(n))
		return false
	}
	*out = n.Value
	return true
}

func (d *decoder) boolean(n *yaml.Node, field string, out *bool) bool {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(n, field, "expected true or false, got %s", describe(n))
		return false
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil {
		d.errorf(n, field, "expected true or false, got %q", n.Value)
		return false
	}
	*out = b
	return true
}

// list decodes a sequence, calling each for every element with its field
// name ("onboot[2]").
func (d *decoder) list(n *yaml.Node, field string, each func(i int, v *yaml.Node, field string)) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "onboot:" with nothing after it is an empty list
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, field, "expected a list, got %s", describe(n))
		return
	}
	for i, v := range n.Content {
		each(i, resolve(v), fmt.Sprintf("%s[%d]", field, i))
	}
}

// strings decodes a list of strings. The result is non-nil even when the
// list is empty, so that "command: []" is told apart from no command.
func (d *decoder) strings(n *yaml.Node, field string) []string {
	out := []string{}
	d.list(n, field, func(_ int, v *yaml.Node, f string) {
		var s string
		if d.str(v, f, &s) {
			out = append(out, s)
		}
	})
	return out
}

func (d *decoder) config(cfg *Config, n *yaml.Node) {
	d.mapping(n, "", fields{
		"kernel": func(v *yaml.Node) { d.kernel(&cfg.Kernel, v) },
		"init": func(v *yaml.Node) {
			cfg.Init = []ImageRef{}
			d.list(v, "init", func(_ int, e *yaml.Node, f string) {
				var ref string
				if d.str(e, f, &ref) && d.imageRef(e, f, ref) {
					cfg.Init = append(cfg.Init, ImageRef{Ref: ref, Pos: d.pos(e)})
				}
			})
		},
		"onboot":     func(v *yaml.Node) { cfg.Onboot = d.images(v, "onboot") },
		"onshutdown": func(v *yaml.Node) { cfg.Onshutdown = d.images(v, "onshutdown") },
		"services":   func(v *yaml.Node) { cfg.Services = d.images(v, "services") },
		"files": func(v *yaml.Node) {
			d.list(v, "files", func(_ int, e *yaml.Node, f string) {
				if file, ok := d.fileEntry(e, f); ok {
					cfg.Files = append(cfg.Files, file)
				}
			})
		},
		"volumes": func(v *yaml.Node) {
			d.list(v, "volumes", func(_ int, e *yaml.Node, f string) {
				if vol, ok := d.volume(e, f); ok {
					cfg.Volumes = append(cfg.Volumes, vol)
				}
			})
		},
		"trust": func(v *yaml.Node) {
			// LinuxKit's Docker Content Trust: keel pins digests instead.
			d.warnf(v, "trust", "ignored: keel does not use Docker Content Trust (pin images by digest instead)")
		},
	})
}

func (d *decoder) kernel(k *Kernel, n *yaml.Node) {
	n = resolve(n)
	k.Pos = d.pos(n)
	optional := func(field string, out **string) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			var s string
			if d.str(v, field, &s) {
				*out = &s
			}
		}
	}
	// No key is required: as in LinuxKit, a file merged after another may
	// set only the fields it changes (Merge); Validate wants an image in
	// the merged result.
	d.mapping(n, "kernel", fields{
		"image": func(v *yaml.Node) {
			if d.str(v, "kernel.image", &k.Image) {
				d.imageRef(v, "kernel.image", k.Image)
			}
		},
		"cmdline": func(v *yaml.Node) { d.str(v, "kernel.cmdline", &k.Cmdline) },
		"binary": func(v *yaml.Node) {
			if d.str(v, "kernel.binary", &k.Binary) && k.Binary != "" {
				if _, err := cleanFilePath(k.Binary); err != nil {
					d.errorf(resolve(v), "kernel.binary", "%v", err)
				}
			}
		},
		"tar":   optional("kernel.tar", &k.Tar),
		"ucode": optional("kernel.ucode", &k.UCode),
	})
}

// imageRef checks that ref parses the way the image cache will parse it.
func (d *decoder) imageRef(n *yaml.Node, field, ref string) bool {
	if _, err := name.ParseReference(ref); err != nil {
		d.errorf(n, field, "invalid image reference %q", ref)
		return false
	}
	return true
}

func (d *decoder) volume(n *yaml.Node, field string) (Volume, bool) {
	v := Volume{Pos: d.pos(n)}
	before := len(d.errs)
	var hasName bool
	if !d.mapping(n, field, fields{
		"name": func(e *yaml.Node) {
			hasName = true
			if d.str(e, field+".name", &v.Name) && !validVolumeName.MatchString(v.Name) {
				d.errorf(resolve(e), field+".name", "invalid volume name %q: use lower-case letters, digits, '_' and '-'", v.Name)
			}
		},
		"image": func(e *yaml.Node) {
			if d.str(e, field+".image", &v.Image) {
				d.imageRef(e, field+".image", v.Image)
			}
		},
		"readonly": func(e *yaml.Node) { d.boolean(e, field+".readonly", &v.Readonly) },
		"format": func(e *yaml.Node) {
			if d.str(e, field+".format", &v.Format) && v.Format != "" && v.Format != "oci" && v.Format != "filesystem" {
				d.errorf(resolve(e), field+".format", "invalid format %q: want \"oci\" or \"filesystem\"", v.Format)
			}
		},
		"platforms": func(e *yaml.Node) { v.Platforms = d.strings(e, field+".platforms") },
	}) {
		return v, false
	}
	if !hasName {
		d.errorf(n, field, "name is required")
	}
	return v, len(d.errs) == before
}

var validVolumeName = regexp.MustCompile(`^[a-z0-9_-]+$`)

func (d *decoder) fileEntry(n *yaml.Node, field string) (File, bool) {
	f := File{Pos: d.pos(n)}
	before := len(d.errs)
	var (
		pathNode, modeNode *yaml.Node
		kinds              []string
	)
	if !d.mapping(n, field, fields{
		"path": func(v *yaml.Node) {
			pathNode = v
			d.str(v, field+".path", &f.Path)
		},
		"contents": func(v *yaml.Node) {
			kinds = append(kinds, "contents")
			d.str(v, field+".contents", &f.Contents)
		},
		"source": func(v *yaml.Node) {
			kinds = append(kinds, "source")
			f.SourcePos, f.SourceField = d.pos(resolve(v)), field+".source"
			if d.str(v, field+".source", &f.Source) && f.Source == "" {
				d.errorf(resolve(v), field+".source", "empty source path")
			}
		},
		"metadata": func(v *yaml.Node) {
			kinds = append(kinds, "metadata")
			if d.str(v, field+".metadata", &f.Metadata) && f.Metadata != "yaml" && f.Metadata != "json" {
				d.errorf(resolve(v), field+".metadata", "invalid value %q: want \"yaml\" or \"json\"", f.Metadata)
			}
		},
		"optional": func(v *yaml.Node) { d.boolean(v, field+".optional", &f.Optional) },
		"directory": func(v *yaml.Node) {
			var dir bool
			if d.boolean(v, field+".directory", &dir) && dir {
				kinds = append(kinds, "directory")
				f.Kind = Directory
			}
		},
		"symlink": func(v *yaml.Node) {
			kinds = append(kinds, "symlink")
			f.Kind = Symlink
			if d.str(v, field+".symlink", &f.Target) && f.Target == "" {
				d.errorf(resolve(v), field+".symlink", "empty symlink target")
			}
		},
		"mode": func(v *yaml.Node) {
			modeNode = v
			if m, ok := d.octalMode(v, field+".mode", 0o7777); ok {
				f.Mode = unixMode(m)
			}
		},
		"uid": func(v *yaml.Node) { d.id(v, field+".uid", &f.UID) },
		"gid": func(v *yaml.Node) { d.id(v, field+".gid", &f.GID) },
	}) {
		return f, false
	}
	if pathNode == nil {
		d.errorf(n, field, "path is required")
	} else if p, err := cleanFilePath(f.Path); err != nil {
		d.errorf(resolve(pathNode), field+".path", "%v", err)
	} else {
		f.Path = p
	}
	switch {
	case len(kinds) > 1:
		d.errorf(n, field, "%s cannot be combined: give only one", strings.Join(kinds, " and "))
	case len(kinds) == 0:
		d.errorf(n, field, "give one of contents, source, metadata, directory: true or symlink")
	}
	if f.Optional && f.Source == "" {
		d.errorf(n, field, "optional applies to a source only")
	}
	if modeNode == nil {
		f.Mode = map[FileKind]fs.FileMode{RegularFile: 0o600, Directory: 0o700, Symlink: 0o777}[f.Kind]
	}
	return f, len(d.errs) == before
}

// octalMode decodes permission bits written in octal ("0644", 0644 or
// "0o644"), at most max.
func (d *decoder) octalMode(v *yaml.Node, field string, max uint64) (uint32, bool) {
	var s string
	if !d.str(v, field, &s) {
		return 0, false
	}
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || m > max {
		d.errorf(resolve(v), field, "invalid mode %q: want octal permissions such as \"0644\"", s)
		return 0, false
	}
	return uint32(m), true
}

// id decodes a uid or gid: a number, or a name resolved at build time.
func (d *decoder) id(v *yaml.Node, field string, out *ID) bool {
	v = resolve(v)
	var s string
	if !d.str(v, field, &s) {
		return false
	}
	*out = ID{Pos: d.pos(v)}
	if v.ShortTag() == "!!int" || (s != "" && strings.Trim(s, "0123456789") == "") {
		n, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			d.errorf(v, field, "invalid id %s: want a number from 0 to 4294967295 or a name", s)
			return false
		}
		out.Num = uint32(n)
		return true
	}
	if s == "" || !bundle.ValidName(s) {
		d.errorf(v, field, "invalid id %q: want a number, \"root\" or the name of a container", s)
		return false
	}
	out.Name = s
	return true
}

// cleanFilePath makes a `files` path relative to the image root: a leading
// "/" is dropped, and a path that would leave the root is refused.
func cleanFilePath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return "", fmt.Errorf("invalid path %q: the image root itself", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("invalid path %q: \"..\" is not allowed", p)
	}
	return c[1:], nil
}

// unixMode turns octal permission bits, as written in YAML, into an
// fs.FileMode (whose setuid/setgid/sticky bits are not the Unix ones).
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// yamlLine is how yaml.v3 words the line of a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError puts a YAML syntax error in keel's file:line form.
func syntaxError(file string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Pos: Pos{File: file, Line: line}, Msg: "invalid YAML: " + m[2]}
	}
	return fmt.Errorf("%s: invalid YAML: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
}
