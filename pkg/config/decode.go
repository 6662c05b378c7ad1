package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/keel-os/keel/pkg/oci/bundle"
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
		return nil, fmt.Errorf("%s: parse YAML: %w", file, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{Pos: Pos{File: file, Line: next.Line, Column: next.Column}, Msg: "a second YAML document: give one configuration per file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: parse YAML: %w", file, err)
	}
	d := &decoder{file: file}
	cfg := &Config{File: file}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return cfg, nil // comments only, or a lone "---"
	}
	d.config(cfg, doc.Content[0])
	if len(d.errs) > 0 {
		// In file order, whatever order the checks ran in.
		slices.SortStableFunc(d.errs, func(a, b *Error) int {
			if a.Pos.Line != b.Pos.Line {
				return a.Pos.Line - b.Pos.Line
			}
			return a.Pos.Column - b.Pos.Column
		})
		return nil, d.errs
	}
	return cfg, nil
}

// decoder walks a yaml.Node tree and collects errors instead of stopping at
// the first one.
type decoder struct {
	file string
	errs Errors
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Field: field, Msg: fmt.Sprintf(format, args...)})
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
			d.errorf(k, field, "unknown key %q (known keys: %s)", k.Value, knownKeys(fs))
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
	})
}

func (d *decoder) kernel(k *Kernel, n *yaml.Node) {
	n = resolve(n)
	k.Pos = d.pos(n)
	var hasImage bool
	if !d.mapping(n, "kernel", fields{
		"image": func(v *yaml.Node) {
			hasImage = true
			if d.str(v, "kernel.image", &k.Image) {
				d.imageRef(v, "kernel.image", k.Image)
			}
		},
		"cmdline": func(v *yaml.Node) { d.str(v, "kernel.cmdline", &k.Cmdline) },
	}) {
		return
	}
	if !hasImage {
		d.errorf(n, "kernel", "image is required")
	}
}

// imageRef checks that ref parses the way the image cache will parse it.
func (d *decoder) imageRef(n *yaml.Node, field, ref string) bool {
	if _, err := name.ParseReference(ref); err != nil {
		d.errorf(n, field, "invalid image reference %q", ref)
		return false
	}
	return true
}

func (d *decoder) images(n *yaml.Node, field string) []Image {
	out := []Image{}
	d.list(n, field, func(_ int, e *yaml.Node, f string) {
		if img, ok := d.image(e, f); ok {
			out = append(out, img)
		}
	})
	return out
}

func (d *decoder) image(n *yaml.Node, field string) (Image, bool) {
	img := Image{Pos: d.pos(n)}
	before := len(d.errs)
	var nameNode, imageNode *yaml.Node
	ok := d.mapping(n, field, fields{
		"name": func(v *yaml.Node) {
			// The name becomes a bundle directory, a container id and a
			// log file name.
			nameNode = v
			img.NamePos = d.pos(v)
			if d.str(v, field+".name", &img.Name) && !bundle.ValidName(img.Name) {
				d.errorf(v, field+".name", "invalid name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", img.Name)
			}
		},
		"image": func(v *yaml.Node) {
			imageNode = v
			if d.str(v, field+".image", &img.Image) {
				d.imageRef(v, field+".image", img.Image)
			}
		},
		"command": func(v *yaml.Node) { img.Command = d.strings(v, field+".command") },
		"env": func(v *yaml.Node) {
			img.Env = d.strings(v, field+".env")
			d.checkEach(v, field+".env", img.Env, checkEnv)
		},
		"binds": func(v *yaml.Node) {
			img.Binds = d.strings(v, field+".binds")
			d.checkEach(v, field+".binds", img.Binds, checkBind)
		},
		"capabilities": func(v *yaml.Node) {
			img.Capabilities = d.strings(v, field+".capabilities")
			for i, c := range img.Capabilities {
				norm, err := NormalizeCapability(c)
				if err != nil {
					d.errorf(elem(v, i), fmt.Sprintf("%s.capabilities[%d]", field, i), "%v", err)
					continue
				}
				img.Capabilities[i] = norm
			}
		},
		"net": func(v *yaml.Node) { d.namespace(v, field+".net", &img.Net) },
		"pid": func(v *yaml.Node) { d.namespace(v, field+".pid", &img.Pid) },
	})
	if !ok {
		return img, false
	}
	if nameNode == nil {
		d.errorf(n, field, "name is required")
	}
	if imageNode == nil {
		d.errorf(n, field, "image is required")
	}
	return img, len(d.errs) == before
}

// elem is the i-th element of a sequence node, or the node itself when it
// has no such element (so an error always has a position).
func elem(n *yaml.Node, i int) *yaml.Node {
	n = resolve(n)
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return resolve(n.Content[i])
	}
	return n
}

// checkEach runs check on every decoded element of the list node n.
func (d *decoder) checkEach(n *yaml.Node, field string, values []string, check func(string) error) {
	for i, s := range values {
		if err := check(s); err != nil {
			d.errorf(elem(n, i), fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
	}
}

func checkEnv(s string) error {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("invalid variable %q: want KEY=value", s)
	}
	return nil
}

// ParseBind splits "src:dst[:opts]" into its parts; opts are separated by
// commas.
func ParseBind(s string) (src, dst string, opts []string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", nil, fmt.Errorf("invalid bind %q: want src:dst[:options]", s)
	}
	src, dst = parts[0], parts[1]
	if !path.IsAbs(src) || !path.IsAbs(dst) {
		return "", "", nil, fmt.Errorf("invalid bind %q: source and destination must be absolute paths", s)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			if o == "" {
				return "", "", nil, fmt.Errorf("invalid bind %q: empty option", s)
			}
			opts = append(opts, o)
		}
	}
	return src, dst, opts, nil
}

func checkBind(s string) error {
	_, _, _, err := ParseBind(s)
	return err
}

func (d *decoder) namespace(n *yaml.Node, field string, out *string) {
	if !d.str(n, field, out) {
		return
	}
	switch v := *out; {
	case v == "", v == NamespaceNew, v == NamespaceHost:
	case path.IsAbs(v):
		*out = path.Clean(v)
	default:
		d.errorf(resolve(n), field, "invalid value %q: want %q, %q or the absolute path of a namespace", v, NamespaceHost, NamespaceNew)
	}
}

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
			var s string
			if !d.str(v, field+".mode", &s) {
				return
			}
			m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
			if err != nil || m > 0o7777 {
				d.errorf(resolve(v), field+".mode", "invalid mode %q: want octal permissions such as \"0644\"", s)
				return
			}
			f.Mode = unixMode(uint32(m))
		},
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
	if len(kinds) > 1 {
		d.errorf(n, field, "%s cannot be combined: give only one", strings.Join(kinds, " and "))
	}
	if modeNode == nil {
		f.Mode = map[FileKind]fs.FileMode{RegularFile: 0o644, Directory: 0o755, Symlink: 0o777}[f.Kind]
	}
	return f, len(d.errs) == before
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
