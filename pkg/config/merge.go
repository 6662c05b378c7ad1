package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Stdin is the file name that reads the configuration from standard input.
const Stdin = "-"

// Merge joins configurations the way `linuxkit build a.yml b.yml` does:
// each kernel field a later file sets replaces the earlier one; init,
// onboot, onshutdown, services, files and volumes are appended in order.
func Merge(cfgs ...*Config) *Config {
	out := &Config{}
	for i, c := range cfgs {
		if i == 0 {
			out.File = c.File
		}
		k := c.Kernel
		if k.Image != "" {
			out.Kernel.Image, out.Kernel.Pos = k.Image, k.Pos
		}
		if k.Cmdline != "" {
			out.Kernel.Cmdline = k.Cmdline
		}
		if k.Binary != "" {
			out.Kernel.Binary = k.Binary
		}
		if k.Tar != nil {
			out.Kernel.Tar = k.Tar
		}
		if k.UCode != nil {
			out.Kernel.UCode = k.UCode
		}
		out.Init = append(out.Init, c.Init...)
		out.Onboot = append(out.Onboot, c.Onboot...)
		out.Onshutdown = append(out.Onshutdown, c.Onshutdown...)
		out.Services = append(out.Services, c.Services...)
		out.Files = append(out.Files, c.Files...)
		out.Volumes = append(out.Volumes, c.Volumes...)
		out.Warnings = append(out.Warnings, c.Warnings...)
	}
	return out
}

// Load reads, parses, merges and validates configuration files; "-" reads
// standard input (once).
func Load(paths ...string) (*Config, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no configuration file given")
	}
	var cfgs []*Config
	stdin := false
	for _, p := range paths {
		var (
			data []byte
			err  error
			name = p
		)
		if p == Stdin {
			if stdin {
				return nil, fmt.Errorf("read config: standard input given twice")
			}
			stdin = true
			name = "<stdin>"
			data, err = io.ReadAll(io.LimitReader(os.Stdin, maxConfigSize+1))
		} else {
			data, err = readLimited(p)
		}
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if len(data) > maxConfigSize {
			return nil, fmt.Errorf("read config %s: larger than %d MiB", name, maxConfigSize>>20)
		}
		cfg, err := Parse(name, data)
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, cfg)
	}
	cfg := Merge(cfgs...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// maxConfigSize bounds a configuration file: YAML this large is a mistake.
const maxConfigSize = 16 << 20

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxConfigSize+1))
}

// ExpandHome turns a leading "~/" into the user's home directory.
func ExpandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}
	return filepath.Join(home, rest), nil
}

// ResolveFiles returns the files to write: a source is read (a missing
// optional one is left out), metadata is generated (both become Contents),
// and uid and gid names are turned into numbers (Num).
func (c *Config) ResolveFiles() ([]File, error) {
	ids := c.IDs()
	var out []File
	for _, f := range c.Files {
		switch {
		case f.Source != "":
			src, err := ExpandHome(f.Source)
			if err != nil {
				return nil, fmt.Errorf("%s: files: %w", f.Pos, err)
			}
			b, err := readSource(src)
			if err != nil {
				// Only a missing source is optional: one that is there
				// but unusable (a device, too big) is a mistake to show.
				if f.Optional && errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, fmt.Errorf("%s: %s: %w", f.SourcePos, f.sourceField(), err)
			}
			f.Contents = string(b)
		case f.Metadata != "":
			b, err := c.Metadata(f.Metadata)
			if err != nil {
				return nil, fmt.Errorf("%s: files: %s: %w", f.Pos, f.Path, err)
			}
			f.Contents = string(b)
		}
		for _, id := range []*ID{&f.UID, &f.GID} {
			n, err := id.Resolve(ids)
			if err != nil {
				return nil, fmt.Errorf("%s: files: %s: %w", id.Pos, f.Path, err)
			}
			*id = ID{Num: n}
		}
		// What was read is the file now: its JSON (a cache key of the
		// initrd writer's) carries the contents, not where they came from.
		f.Source, f.Metadata, f.Optional = "", "", false
		f.SourcePos, f.SourceField = Pos{}, ""
		out = append(out, f)
	}
	return out, nil
}

// MaxFileSource is the largest `files` source read into the image, in
// bytes. The whole file is held in memory while building and in RAM on the
// booted system (the initrd is unpacked into a tmpfs); 64 MiB is well above
// any configuration file or key and well below what would hurt either.
const MaxFileSource = 64 << 20

// sourceField names f's source in errors.
func (f *File) sourceField() string {
	if f.SourceField == "" {
		return "files.source"
	}
	return f.SourceField
}

// checkSource refuses what a `files` source may not be: anything but a
// regular file (a device such as /dev/zero reads forever, a FIFO blocks
// the build), or a file over MaxFileSource.
func checkSource(p string, info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", p, fileType(info.Mode()))
	}
	if info.Size() > MaxFileSource {
		return fmt.Errorf("%s is larger than %d MiB, the limit of a files: source", p, MaxFileSource>>20)
	}
	return nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "of type " + m.Type().String()
}

// readSource reads a `files` source: a regular file of at most
// MaxFileSource bytes, checked before it is opened and again once open.
func readSource(p string) ([]byte, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if err := checkSource(p, info); err != nil {
		return nil, err
	}
	// O_NONBLOCK: were the file swapped for a FIFO since the Stat, the
	// open would otherwise wait for a writer; the Stat of the open file
	// then refuses it. (It changes nothing for a regular file.)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if err := checkSource(p, info); err != nil {
		return nil, err
	}
	// The limit holds while reading too: the file may grow.
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSource+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > MaxFileSource {
		return nil, fmt.Errorf("%s is larger than %d MiB, the limit of a files: source", p, MaxFileSource>>20)
	}
	return b, nil
}

// Metadata is the configuration as "yaml" or "json", for a `files` entry
// with `metadata`.
func (c *Config) Metadata(format string) ([]byte, error) {
	j, err := json.MarshalIndent(c, "", "    ")
	if err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	switch format {
	case "json":
		return append(j, '\n'), nil
	case "yaml":
		// JSON is YAML: decoding it into a node keeps the key order.
		var n yaml.Node
		if err := yaml.Unmarshal(j, &n); err != nil {
			return nil, fmt.Errorf("encode configuration: %w", err)
		}
		setBlockStyle(&n)
		return yaml.Marshal(&n)
	}
	return nil, fmt.Errorf("unknown metadata format %q", format)
}

func setBlockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
		n.Style = 0
	}
	for _, c := range n.Content {
		setBlockStyle(c)
	}
}
