package config

import (
	"bytes"
	"errors"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
)

// LabelKey is the image label whose value (YAML or JSON) gives defaults for
// an image's entry, as in LinuxKit.
const LabelKey = "org.mobyproject.config"

// ParseLabel decodes an org.mobyproject.config label of the image ref. It
// takes the keys an image entry takes, except name and image.
func ParseLabel(ref, label string) (ImageConfig, error) {
	var ic ImageConfig
	file := ref + " label " + LabelKey
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader([]byte(label))).Decode(&doc); errors.Is(err, io.EOF) {
		return ic, nil
	} else if err != nil {
		return ic, syntaxError(file, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return ic, nil
	}
	if err := checkSize(file, doc.Content[0]); err != nil {
		return ic, err
	}
	d := &decoder{file: file}
	d.mapping(doc.Content[0], "label", d.imageConfigFields(&ic, "label"))
	if len(d.errs) > 0 {
		return ImageConfig{}, d.sorted()
	}
	return ic, nil
}

// WithLabel merges an image entry over its image's label the way LinuxKit
// does: each field the entry sets replaces the label's, and
// `capabilities.add` and `binds.add` add to the label's capabilities and
// binds (when the entry does not replace them outright).
func (img Image) WithLabel(label ImageConfig) Image {
	out := img
	y, l := &img.ImageConfig, &label
	c := &out.ImageConfig
	pickSlice(&c.Capabilities, y.Capabilities, l.Capabilities)
	if y.Capabilities == nil {
		c.Capabilities = addUnique(l.Capabilities, y.CapabilitiesAdd)
	}
	c.CapabilitiesAdd = nil
	if y.Binds == nil {
		c.Binds = addUnique(l.Binds, y.BindsAdd)
	}
	c.BindsAdd = nil
	pickSlice(&c.Ambient, y.Ambient, l.Ambient)
	pickSlice(&c.Tmpfs, y.Tmpfs, l.Tmpfs)
	pickSlice(&c.Command, y.Command, l.Command)
	pickSlice(&c.Env, y.Env, l.Env)
	pickSlice(&c.MaskedPaths, y.MaskedPaths, l.MaskedPaths)
	pickSlice(&c.ReadonlyPaths, y.ReadonlyPaths, l.ReadonlyPaths)
	pickSlice(&c.Rlimits, y.Rlimits, l.Rlimits)
	pickSlice(&c.Mounts, y.Mounts, l.Mounts)
	pickSlice(&c.Devices, y.Devices, l.Devices)
	pickSlice(&c.AdditionalGids, y.AdditionalGids, l.AdditionalGids)
	pickSlice(&c.UIDMappings, y.UIDMappings, l.UIDMappings)
	pickSlice(&c.GIDMappings, y.GIDMappings, l.GIDMappings)
	pickMap(&c.Sysctl, y.Sysctl, l.Sysctl)
	pickMap(&c.Annotations, y.Annotations, l.Annotations)
	for _, s := range []struct {
		dst  *string
		y, l string
	}{
		{&c.Cwd, y.Cwd, l.Cwd}, {&c.Net, y.Net, l.Net}, {&c.Pid, y.Pid, l.Pid},
		{&c.Ipc, y.Ipc, l.Ipc}, {&c.Uts, y.Uts, l.Uts}, {&c.Userns, y.Userns, l.Userns},
		{&c.Hostname, y.Hostname, l.Hostname}, {&c.RootfsPropagation, y.RootfsPropagation, l.RootfsPropagation},
		{&c.CgroupsPath, y.CgroupsPath, l.CgroupsPath},
	} {
		if s.y == "" {
			*s.dst = s.l
		}
	}
	pickPtr(&c.Readonly, y.Readonly, l.Readonly)
	pickPtr(&c.NoNewPrivileges, y.NoNewPrivileges, l.NoNewPrivileges)
	pickPtr(&c.OOMScoreAdj, y.OOMScoreAdj, l.OOMScoreAdj)
	pickPtr(&c.UID, y.UID, l.UID)
	pickPtr(&c.GID, y.GID, l.GID)
	pickPtr(&c.Resources, y.Resources, l.Resources)
	c.Runtime = mergeRuntime(l.Runtime, y.Runtime)
	c.Healthcheck = mergeHealthcheck(l.Healthcheck, y.Healthcheck)
	if y.DependsOn == nil {
		c.DependsOn = l.DependsOn
	}
	return out
}

// mergeHealthcheck overrides the label's health check field by field, as
// Docker does a container's over its image's HEALTHCHECK; a test of
// ["NONE"] in the entry turns the label's off whatever its other fields.
func mergeHealthcheck(l, y *Healthcheck) *Healthcheck {
	if l == nil || y.Disabled() {
		return y
	}
	if y == nil {
		return l
	}
	out := *l
	if y.Test != nil {
		out.Test = y.Test
	}
	for _, s := range []struct {
		dst *string
		y   string
	}{{&out.Interval, y.Interval}, {&out.Timeout, y.Timeout}, {&out.StartPeriod, y.StartPeriod}} {
		if s.y != "" {
			*s.dst = s.y
		}
	}
	if y.Retries != nil {
		out.Retries = y.Retries
	}
	return &out
}

// mergeRuntime overrides the label's runtime section field by field.
func mergeRuntime(l, y *Runtime) *Runtime {
	if l == nil {
		return y
	}
	if y == nil {
		return l
	}
	out := *l
	if y.Cgroups != nil {
		out.Cgroups = y.Cgroups
	}
	if y.Mounts != nil {
		out.Mounts = y.Mounts
	}
	if y.Mkdir != nil {
		out.Mkdir = y.Mkdir
	}
	if y.Interfaces != nil {
		out.Interfaces = y.Interfaces
	}
	if y.Namespace != "" {
		out.Namespace = y.Namespace
	}
	for _, s := range []struct {
		dst *string
		y   string
	}{
		{&out.BindNS.Cgroup, y.BindNS.Cgroup}, {&out.BindNS.Ipc, y.BindNS.Ipc}, {&out.BindNS.Mnt, y.BindNS.Mnt},
		{&out.BindNS.Net, y.BindNS.Net}, {&out.BindNS.Pid, y.BindNS.Pid}, {&out.BindNS.User, y.BindNS.User},
		{&out.BindNS.Uts, y.BindNS.Uts},
	} {
		if s.y != "" {
			*s.dst = s.y
		}
	}
	return &out
}

// pickSlice, pickMap and pickPtr give a field the label's value when the
// entry leaves it unset (nil).
func pickSlice[T any](dst *[]T, y, l []T) {
	if y == nil {
		*dst = l
	}
}

func pickMap[K comparable, V any](dst *map[K]V, y, l map[K]V) {
	if y == nil {
		*dst = l
	}
}

func pickPtr[T any](dst **T, y, l *T) {
	if y == nil {
		*dst = l
	}
}

// addUnique appends to base what add holds that base does not; nil when
// both are nil (nothing set).
func addUnique(base, add []string) []string {
	if base == nil && add == nil {
		return nil
	}
	out := slices.Clone(base)
	if out == nil {
		out = []string{}
	}
	for _, a := range add {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
