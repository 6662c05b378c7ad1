// Package config is keel's YAML schema: a LinuxKit-style list of images
// (kernel, init, onboot, onshutdown, services) plus files and volumes for the
// image, with the same keys and meanings as LinuxKit's, and a few keel
// extensions (restart, stopGracePeriod, onFailure, timeout, and Docker
// Compose's healthcheck and depends_on). docs/yaml.md is the reference.
//
// Parse decodes one file strictly: unknown keys and wrong types are errors
// that name file:line:column and the field. Merge joins several files the
// way `linuxkit build a.yml b.yml` does. Validate checks what only makes
// sense for the whole configuration (required sections, duplicate names,
// uid/gid names, file sources, dependencies). Load does all of it.
package config

import (
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/keel-os/keel/pkg/bundle"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Config is one decoded YAML file, or several merged.
type Config struct {
	// File is the path the configuration was read from, as given (the
	// first one when several were merged).
	File       string     `json:"-"`
	Kernel     Kernel     `json:"kernel"`
	Init       []ImageRef `json:"init,omitempty"`
	Onboot     []Image    `json:"onboot,omitempty"`
	Onshutdown []Image    `json:"onshutdown,omitempty"`
	Services   []Image    `json:"services,omitempty"`
	Files      []File     `json:"files,omitempty"`
	Volumes    []Volume   `json:"volumes,omitempty"`
	// Warnings are things accepted but ignored (such as `trust`), for the
	// command to print.
	Warnings []*Error `json:"-"`
}

// Pos is a position in a YAML file, for error messages at any later stage.
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	if p.Column == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line) // a YAML syntax error knows its line only
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Kernel is the `kernel` section: the image holding the kernel (and
// optionally a tarball of modules and a microcode cpio) and the command line.
type Kernel struct {
	Image   string `json:"image"`
	Cmdline string `json:"cmdline,omitempty"`
	// Binary is the name of the kernel file in the image; "" means "kernel".
	Binary string `json:"binary,omitempty"`
	// Tar is the name of the modules tarball; nil means "kernel.tar", and
	// "" or "none" means no tarball.
	Tar *string `json:"tar,omitempty"`
	// UCode is the name of a microcode cpio to put before the initrd; nil
	// means none.
	UCode *string `json:"ucode,omitempty"`
	Pos   Pos     `json:"-"`
}

// TarName is the modules tarball as the initrd writer takes it: "" for
// the default (kernel.tar, if the image has one), "none" for no tarball,
// or the name given.
func (k Kernel) TarName() string {
	switch {
	case k.Tar == nil:
		return ""
	case *k.Tar == "" || *k.Tar == "none":
		return "none"
	}
	return *k.Tar
}

// UCodeName is the microcode cpio to read from the kernel image, "" for none.
func (k Kernel) UCodeName() string {
	if k.UCode == nil {
		return ""
	}
	return *k.UCode
}

// ImageRef is an entry of `init`: an image whose filesystem is merged into
// the root of the initrd.
type ImageRef struct {
	Ref string
	Pos Pos
}

// Image is an entry of `onboot`, `onshutdown` or `services`: one container.
type Image struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	ImageConfig

	// keel's extensions (see docs/yaml.md).

	// Restart is a service's restart policy (bundle.RestartAlways,
	// RestartOnFailure or RestartNever); "" is the default, on-failure.
	Restart string `json:"restart,omitempty"`
	// StopGracePeriod is, as written, a Go duration ("10s").
	StopGracePeriod string `json:"stopGracePeriod,omitempty"`
	// OnFailure is what a failing onboot or onshutdown entry does
	// (bundle.OnFailureContinue or OnFailureHalt); "" is continue.
	OnFailure string `json:"onFailure,omitempty"`
	// Timeout bounds an onboot or onshutdown entry's run: as written, a
	// Go duration ("30s"); "" is no limit for onboot and PID 1's default
	// for onshutdown. Services have StopGracePeriod instead.
	Timeout string `json:"timeout,omitempty"`

	// Pos is where the entry starts; NamePos is where its name is.
	Pos     Pos `json:"-"`
	NamePos Pos `json:"-"`
}

// ImageConfig is what both an image's YAML entry and its
// `org.mobyproject.config` label may set. A nil slice, map or pointer and an
// empty string mean "not set", so that a label's value shows through; an
// empty list given in the YAML is not nil, and clears the label's value.
type ImageConfig struct {
	// Capabilities are CAP_ names (normalised to upper case with the CAP_
	// prefix), or the single word "all" or "none".
	Capabilities    []string `json:"capabilities,omitempty"`
	CapabilitiesAdd []string `json:"capabilities.add,omitempty"`
	Ambient         []string `json:"ambient,omitempty"`
	// Mounts are complete: type, source and destination are filled in.
	Mounts []specs.Mount `json:"mounts,omitempty"`
	// Binds are "src:dst[:opts]"; src is an absolute path or a volume name.
	Binds    []string `json:"binds,omitempty"`
	BindsAdd []string `json:"binds.add,omitempty"`
	Devices  []Device `json:"devices,omitempty"`
	// Tmpfs are "dst[:opts]".
	Tmpfs []string `json:"tmpfs,omitempty"`
	// Command replaces the image's entrypoint and cmd when not nil.
	Command []string `json:"command,omitempty"`
	// Env entries are KEY=value; they override the image's variables.
	Env []string `json:"env,omitempty"`
	Cwd string   `json:"cwd,omitempty"`
	// Net, Ipc, Uts, Pid and Userns are "" (the default), "host" or "root"
	// (share the host's), "new" (a new namespace; "none" too for net) or
	// the absolute path of a namespace to join.
	Net               string                `json:"net,omitempty"`
	Pid               string                `json:"pid,omitempty"`
	Ipc               string                `json:"ipc,omitempty"`
	Uts               string                `json:"uts,omitempty"`
	Userns            string                `json:"userns,omitempty"`
	Hostname          string                `json:"hostname,omitempty"`
	Readonly          *bool                 `json:"readonly,omitempty"`
	MaskedPaths       []string              `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string              `json:"readonlyPaths,omitempty"`
	UID               *ID                   `json:"uid,omitempty"`
	GID               *ID                   `json:"gid,omitempty"`
	AdditionalGids    []ID                  `json:"additionalGids,omitempty"`
	NoNewPrivileges   *bool                 `json:"noNewPrivileges,omitempty"`
	OOMScoreAdj       *int                  `json:"oomScoreAdj,omitempty"`
	RootfsPropagation string                `json:"rootfsPropagation,omitempty"`
	CgroupsPath       string                `json:"cgroupsPath,omitempty"`
	Resources         *specs.LinuxResources `json:"resources,omitempty"`
	Sysctl            map[string]string     `json:"sysctl,omitempty"`
	// Rlimits are "name,soft,hard", already checked by Parse.
	Rlimits     []string               `json:"rlimits,omitempty"`
	UIDMappings []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
	GIDMappings []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
	Annotations map[string]string      `json:"annotations,omitempty"`
	Runtime     *Runtime               `json:"runtime,omitempty"`

	// keel's extensions for services, named as in Docker Compose (see
	// docs/yaml.md); PID 1 ignores them on onboot and onshutdown entries,
	// where the YAML refuses them.

	// Healthcheck is a service's health check; nil is not set. A test of
	// ["NONE"] (or `disable: true`) is set to "no health check", which
	// hides the label's.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	// DependsOn are the services a service waits for before it starts.
	DependsOn Dependencies `json:"depends_on,omitempty"`
}

// Healthcheck is a service's `healthcheck`, as written: an empty string
// and a nil Retries are not set, so that a label's value shows through;
// defaults are filled in when runtime.json is written.
type Healthcheck struct {
	// Test is ["CMD", prog, args...], ["CMD-SHELL", command],
	// ["TCP", host:port] or ["NONE"]; a plain string in the YAML is
	// ["CMD-SHELL", string], and `disable: true` is ["NONE"].
	Test        []string `json:"test,omitempty"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	StartPeriod string   `json:"start_period,omitempty"`
	Retries     *int     `json:"retries,omitempty"`
}

// HealthNone is the test word that turns a health check off.
const HealthNone = "NONE"

// Healthcheck defaults, as in Docker Compose.
const (
	DefaultHealthInterval    = "30s"
	DefaultHealthTimeout     = "30s"
	DefaultHealthStartPeriod = "0s"
	DefaultHealthRetries     = 3
)

// Enabled reports whether h is a health check with a test to run.
func (h *Healthcheck) Enabled() bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] != HealthNone
}

// Disabled reports whether h says explicitly that there is no health
// check (["NONE"]).
func (h *Healthcheck) Disabled() bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] == HealthNone
}

// Dependency is one entry of a service's `depends_on`.
type Dependency struct {
	Service string
	// Condition is bundle.ConditionStarted or bundle.ConditionHealthy;
	// "" is the short form (a plain list of names), which the build
	// resolves (Config.ResolveDependencies): healthy when the dependency
	// has a health check, started when it has none.
	Condition string
	Pos       Pos
}

// Dependencies is a `depends_on` list. The YAML gives either the short
// form (a list of names, every Condition "") or the long form (a mapping
// of names to a condition).
type Dependencies []Dependency

// MarshalJSON writes the dependencies in the form they were given.
func (ds Dependencies) MarshalJSON() ([]byte, error) {
	if len(ds) == 0 || ds[0].Condition == "" {
		names := make([]string, len(ds))
		for i, d := range ds {
			names[i] = d.Service
		}
		return json.Marshal(names)
	}
	// A mapping in the YAML's order (encoding/json would sort a map).
	var b []byte
	b = append(b, '{')
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(d.Service)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(map[string]string{"condition": d.Condition})
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// Namespace values of the namespace fields, besides a path.
const (
	NamespaceNew  = "new"
	NamespaceHost = "host"
	NamespaceRoot = "root" // LinuxKit's synonym of host
	NamespaceNone = "none" // net only: a new, empty namespace
)

// Device is an entry of `devices`: a device node to create in the
// container and allow in its device cgroup, or, with Path "all", every
// device of a type.
type Device struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Major int64  `json:"major"`
	Minor int64  `json:"minor"`
	// Mode is the node's permission bits, parsed from octal.
	Mode fs.FileMode `json:"mode,omitempty"`
}

// Runtime is an entry's `runtime` section: what PID 1 does on the host
// side before the container is created. It becomes runtime.json.
type Runtime struct {
	Cgroups    []string      `json:"cgroups,omitempty"`
	Mounts     []specs.Mount `json:"mounts,omitempty"`
	Mkdir      []string      `json:"mkdir,omitempty"`
	Interfaces []Interface   `json:"interfaces,omitempty"`
	BindNS     Namespaces    `json:"bindNS,omitempty"`
	Namespace  string        `json:"namespace,omitempty"`
}

// Interface and Namespaces are runtime.json's, as the bundle holds them.
type (
	Interface  = bundle.Interface
	Namespaces = bundle.Namespaces
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
	// Contents of a regular file (after ResolveFiles, also of one made
	// from Source or Metadata).
	Contents string
	// Source is a file on the build machine to copy, "~/" expanded.
	Source string
	// SourcePos is where Source is written, and SourceField its field
	// ("files[2].source"), for errors about the file it names.
	SourcePos   Pos
	SourceField string
	// Optional skips a Source that does not exist.
	Optional bool
	// Metadata is "yaml" or "json": the file holds the configuration.
	Metadata string
	// Target of a symlink.
	Target string
	// Mode holds the permission bits (and setuid/setgid/sticky); as in
	// LinuxKit it defaults to 0600 for files, 0700 for directories (and
	// 0777 for symlinks).
	Mode fs.FileMode
	// UID and GID own the file; a name is a container's allocated id.
	UID, GID ID
	Pos      Pos
}

// Volume is an entry of `volumes`. keel parses and checks volumes; it does
// not build them yet.
type Volume struct {
	Name      string   `json:"name"`
	Image     string   `json:"image,omitempty"`
	Readonly  bool     `json:"readonly,omitempty"`
	Format    string   `json:"format,omitempty"`
	Platforms []string `json:"platforms,omitempty"`
	Pos       Pos      `json:"-"`
}

// ID is a uid or gid as the YAML gives it: a number, or a name that is
// "root" or the name of a container (see Config.IDs).
type ID struct {
	Name string
	Num  uint32
	Pos  Pos
}

func (id ID) String() string {
	if id.Name != "" {
		return id.Name
	}
	return fmt.Sprint(id.Num)
}

// MarshalJSON writes a number as a number and a name as a string.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.Name != "" {
		return []byte(fmt.Sprintf("%q", id.Name)), nil
	}
	return []byte(fmt.Sprint(id.Num)), nil
}

// FirstID is the id given to the first container, as in LinuxKit: each
// onboot, onshutdown and service entry, in that order, gets the next one.
const FirstID = 100

// IDs maps each container name to the uid and gid allocated to it, which a
// `uid`, `gid` or `additionalGids` may name. Onboot and onshutdown names
// may repeat: each entry still takes the next id, and the name maps to the
// last one's, as LinuxKit's build does.
func (c *Config) IDs() map[string]uint32 {
	m := map[string]uint32{}
	id := uint32(FirstID)
	for _, l := range [][]Image{c.Onboot, c.Onshutdown, c.Services} {
		for _, img := range l {
			m[img.Name] = id
			id++
		}
	}
	return m
}

// idOwners maps each container name to the entries that bear it
// ("onboot[0]", ...), in the order IDs allocates them: the last one's id is
// the one a name resolves to.
func (c *Config) idOwners() map[string][]string {
	m := map[string][]string{}
	for _, l := range []struct {
		field  string
		images []Image
	}{{"onboot", c.Onboot}, {"onshutdown", c.Onshutdown}, {"services", c.Services}} {
		for i, img := range l.images {
			m[img.Name] = append(m[img.Name], fmt.Sprintf("%s[%d]", l.field, i))
		}
	}
	return m
}

// Resolve turns an ID into a number using ids (Config.IDs).
func (id ID) Resolve(ids map[string]uint32) (uint32, error) {
	switch id.Name {
	case "":
		return id.Num, nil
	case "root":
		return 0, nil
	}
	if n, ok := ids[id.Name]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("unknown id %q: give a number, \"root\" or the name of a container", id.Name)
}

// MarshalJSON writes an init entry as its reference.
func (r ImageRef) MarshalJSON() ([]byte, error) { return json.Marshal(r.Ref) }

// MarshalJSON writes a file entry with the YAML's keys, for `metadata`.
func (f File) MarshalJSON() ([]byte, error) {
	type entry struct {
		Path      string  `json:"path"`
		Directory bool    `json:"directory,omitempty"`
		Symlink   string  `json:"symlink,omitempty"`
		Contents  *string `json:"contents,omitempty"`
		Source    string  `json:"source,omitempty"`
		Metadata  string  `json:"metadata,omitempty"`
		Optional  bool    `json:"optional,omitempty"`
		Mode      string  `json:"mode"`
		UID       *ID     `json:"uid,omitempty"`
		GID       *ID     `json:"gid,omitempty"`
	}
	e := entry{Path: "/" + f.Path, Source: f.Source, Metadata: f.Metadata, Optional: f.Optional, Mode: octal(f.Mode)}
	switch {
	case f.Kind == Directory:
		e.Directory = true
	case f.Kind == Symlink:
		e.Symlink = f.Target
	case f.Source == "" && f.Metadata == "":
		e.Contents = &f.Contents
	}
	if f.UID != (ID{}) {
		e.UID = &f.UID
	}
	if f.GID != (ID{}) {
		e.GID = &f.GID
	}
	return json.Marshal(e)
}

// MarshalJSON writes a device with its mode in octal, as the YAML has it.
func (d Device) MarshalJSON() ([]byte, error) {
	type device struct {
		Path  string `json:"path"`
		Type  string `json:"type"`
		Major int64  `json:"major,omitempty"`
		Minor int64  `json:"minor,omitempty"`
		Mode  string `json:"mode,omitempty"`
	}
	out := device{Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor}
	if d.Path != "all" {
		out.Mode = octal(d.Mode)
	}
	return json.Marshal(out)
}

// octal is a mode as "0644" (with setuid, setgid and sticky as 4000, 2000
// and 1000).
func octal(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}
