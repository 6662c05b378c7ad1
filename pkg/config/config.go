// Package config is keel's YAML schema: a LinuxKit-style list of images
// (kernel, init, onboot, onshutdown, services) plus files for the initrd.
//
// Parse decodes one file strictly: unknown keys and wrong types are errors
// that name file:line:column. Validate checks what only makes sense for the
// whole configuration (required sections, duplicate names). Load does both.
package config

import (
	"fmt"
	"io/fs"
	"os"
)

// Config is one decoded YAML file.
type Config struct {
	// File is the path the configuration was read from, as given.
	File       string
	Kernel     Kernel
	Init       []ImageRef
	Onboot     []Image
	Onshutdown []Image
	Services   []Image
	Files      []File
}

// Pos is a position in a YAML file, for error messages at any later stage.
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Kernel is the `kernel` section: the image holding /kernel (and optionally
// /kernel.tar with its modules) and the kernel command line.
type Kernel struct {
	Image   string
	Cmdline string
	Pos     Pos
}

// ImageRef is an entry of `init`: an image whose filesystem is merged into
// the root of the initrd.
type ImageRef struct {
	Ref string
	Pos Pos
}

// Image is an entry of `onboot`, `onshutdown` or `services`: one container.
type Image struct {
	Name  string
	Image string
	// Command replaces the image's entrypoint and cmd when not nil.
	Command []string
	// Env entries are KEY=value; they override the image's variables.
	Env []string
	// Binds are "src:dst[:opts]" bind mounts.
	Binds []string
	// Capabilities are CAP_ names (normalised to upper case with the CAP_
	// prefix) or "all". Nil means LinuxKit's default set.
	Capabilities []string
	// Net and Pid are "" or "new" (a new namespace), "host" (share the
	// host's) or an absolute path of a namespace to join.
	Net string
	Pid string

	// Pos is where the entry starts; NamePos is where its name is.
	Pos     Pos
	NamePos Pos
}

// Namespace values of Image.Net and Image.Pid, besides a path.
const (
	NamespaceNew  = "new"
	NamespaceHost = "host"
)

// FileKind says what a `files` entry creates.
type FileKind int

const (
	RegularFile FileKind = iota
	Directory
	Symlink
)

// File is an entry of `files`: something written into the initrd as is.
type File struct {
	// Path is relative to the root of the image, cleaned, never "..".
	Path string
	Kind FileKind
	// Contents of a regular file.
	Contents string
	// Target of a symlink.
	Target string
	// Mode holds the permission bits (and setuid/setgid/sticky); it defaults
	// to 0644 for files, 0755 for directories and 0777 for symlinks.
	Mode fs.FileMode
	Pos  Pos
}

// Load reads, parses and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
