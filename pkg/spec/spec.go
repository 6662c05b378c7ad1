package spec

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
)

// DefaultPath is PATH for an image whose config sets none: without it a
// relative command could not be found inside the container.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultMounts are LinuxKit's: /proc, a tmpfs /dev (read-only with a
// read-only root), /dev/pts, /sys (read-only with a read-only root) and a
// read-only /sys/fs/cgroup. /dev/shm and /dev/mqueue are not among them, as
// in LinuxKit; `tmpfs: [/dev/shm]` adds one.
func defaultMounts(readonly bool) []specs.Mount {
	dev := []string{"nosuid", "strictatime", "mode=755", "size=65536k"}
	sys := []string{"nosuid", "noexec", "nodev"}
	if readonly {
		dev = append(dev, "ro")
		sys = append(sys, "ro")
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "nodev", "noexec", "relatime"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: dev},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sys},
		// Type "cgroup": runc mounts cgroup2 for it on a unified host.
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// Specs builds a bundle's config.json (an OCI runtime spec) and
// runtime.json for one YAML entry of the given kind. The image's config
// gives the command, environment, working directory and user (a named
// USER through the image's /etc/passwd); its org.mobyproject.config label
// gives defaults that the entry overrides, as in LinuxKit. ids are the
// uids allocated to containers (config.Config.IDs), for a uid or gid given
// as a name.
func Specs(kind bundle.Kind, entry config.Image, image v1.Image, ids map[string]uint32) (*specs.Spec, *bundle.Runtime, error) {
	s, rt, err := makeSpecs(kind, entry, image, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("spec for %s: %w", entry.Name, err)
	}
	return s, rt, nil
}

// WithLabel is entry merged over its image's org.mobyproject.config label
// (config.Image.WithLabel), as Specs uses it.
func WithLabel(entry config.Image, image v1.Image) (config.Image, error) {
	cc, err := imageConfigOf(image)
	if err != nil {
		return config.Image{}, err
	}
	return withLabel(entry, cc)
}

func imageConfigOf(image v1.Image) (v1.Config, error) {
	if image == nil {
		return v1.Config{}, nil
	}
	ic, err := image.ConfigFile()
	if err != nil {
		return v1.Config{}, fmt.Errorf("read image config: %w", err)
	}
	return ic.Config, nil
}

func withLabel(entry config.Image, cc v1.Config) (config.Image, error) {
	// Merged even when there is no label: that folds capabilities.add and
	// binds.add into capabilities and binds.
	var label config.ImageConfig
	if l := cc.Labels[config.LabelKey]; l != "" {
		var err error
		if label, err = config.ParseLabel(entry.Image, l); err != nil {
			return config.Image{}, err
		}
	}
	return entry.WithLabel(label), nil
}

func makeSpecs(kind bundle.Kind, entry config.Image, image v1.Image, ids map[string]uint32) (*specs.Spec, *bundle.Runtime, error) {
	cc, err := imageConfigOf(image)
	if err != nil {
		return nil, nil, err
	}
	if entry, err = withLabel(entry, cc); err != nil {
		return nil, nil, err
	}
	e := entry.ImageConfig

	args := e.Command
	if args == nil {
		args = append(slices.Clone(cc.Entrypoint), cc.Cmd...)
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("no command: the image has no entrypoint or cmd and the YAML gives none")
	}
	cwd := e.Cwd
	if cwd == "" {
		cwd = cc.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	user, err := processUser(e, image, cc.User, ids)
	if err != nil {
		return nil, nil, err
	}
	caps, err := capabilities(e.Capabilities)
	if err != nil {
		return nil, nil, err
	}
	ambient, err := capabilities(e.Ambient)
	if err != nil {
		return nil, nil, err
	}
	bounding := slices.Clone(caps)
	for _, c := range ambient {
		if !slices.Contains(bounding, c) {
			bounding = append(bounding, c)
		}
	}
	sort.Strings(bounding)
	var rlimits []specs.POSIXRlimit
	for _, r := range e.Rlimits {
		rl, err := config.ParseRlimit(r)
		if err != nil {
			return nil, nil, err
		}
		rlimits = append(rlimits, rl)
	}
	readonly := e.Readonly != nil && *e.Readonly
	mounts, err := mountList(e, readonly)
	if err != nil {
		return nil, nil, err
	}
	nss, err := namespaces(e)
	if err != nil {
		return nil, nil, err
	}
	if e.Hostname != "" && !slices.ContainsFunc(nss, func(n specs.LinuxNamespace) bool { return n.Type == specs.UTSNamespace }) {
		return nil, nil, fmt.Errorf("hostname %q needs its own uts namespace: add `uts: new`", e.Hostname)
	}
	resources := &specs.LinuxResources{}
	if e.Resources != nil {
		r := *e.Resources
		resources = &r
		resources.Devices = slices.Clone(r.Devices)
	}
	var devices []specs.LinuxDevice
	for _, d := range e.Devices {
		if d.Path == "all" {
			resources.Devices = append(resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Access: "rwm"})
			continue
		}
		mode := d.Mode
		major, minor := d.Major, d.Minor
		devices = append(devices, specs.LinuxDevice{Path: d.Path, Type: d.Type, Major: major, Minor: minor, FileMode: &mode})
		resources.Devices = append(resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: "rwm"})
	}
	cgroupsPath := e.CgroupsPath
	if cgroupsPath == "" {
		cgroupsPath = "/" + string(kind) + "/" + entry.Name
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: bundle.RootfsDir, Readonly: readonly},
		Hostname: e.Hostname,
		Process: &specs.Process{
			Args: args,
			Env:  mergeEnv(cc.Env, e.Env),
			Cwd:  cwd,
			User: user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:    bounding,
				Effective:   caps,
				Inheritable: bounding,
				Permitted:   bounding,
				Ambient:     ambient,
			},
			Rlimits:         rlimits,
			NoNewPrivileges: e.NoNewPrivileges != nil && *e.NoNewPrivileges,
			OOMScoreAdj:     e.OOMScoreAdj,
		},
		Mounts:      mounts,
		Annotations: e.Annotations,
		Linux: &specs.Linux{
			UIDMappings:       e.UIDMappings,
			GIDMappings:       e.GIDMappings,
			Sysctl:            e.Sysctl,
			Resources:         resources,
			CgroupsPath:       cgroupsPath,
			Namespaces:        nss,
			Devices:           devices,
			RootfsPropagation: e.RootfsPropagation,
			MaskedPaths:       e.MaskedPaths,
			ReadonlyPaths:     e.ReadonlyPaths,
		},
	}
	rt := bundleRuntime(kind, entry)
	if kind == bundle.Service {
		if rt.Healthcheck, err = healthcheck(e.Healthcheck); err != nil {
			return nil, nil, err
		}
		if rt.DependsOn, err = dependencies(e.DependsOn); err != nil {
			return nil, nil, err
		}
	}
	return s, rt, nil
}

// healthcheck is runtime.json's health check: every field written, the
// defaults filled in; nil for none (no healthcheck, or a test of NONE).
func healthcheck(h *config.Healthcheck) (*bundle.Healthcheck, error) {
	if h == nil || h.Disabled() {
		return nil, nil
	}
	if len(h.Test) == 0 {
		return nil, fmt.Errorf("healthcheck has no test, and the image's label gives none")
	}
	out := &bundle.Healthcheck{
		Test:        slices.Clone(h.Test),
		Interval:    cmp.Or(h.Interval, config.DefaultHealthInterval),
		Timeout:     cmp.Or(h.Timeout, config.DefaultHealthTimeout),
		StartPeriod: cmp.Or(h.StartPeriod, config.DefaultHealthStartPeriod),
		Retries:     config.DefaultHealthRetries,
	}
	if h.Retries != nil {
		out.Retries = *h.Retries
	}
	return out, nil
}

// dependencies is runtime.json's dependsOn. Every condition must be set:
// a short form is resolved, with the other services, by
// config.Config.ResolveDependencies.
func dependencies(deps config.Dependencies) ([]bundle.Dependency, error) {
	var out []bundle.Dependency
	for _, d := range deps {
		if d.Condition == "" {
			return nil, fmt.Errorf("depends_on %q: condition not resolved (config.Config.ResolveDependencies resolves it)", d.Service)
		}
		out = append(out, bundle.Dependency{Service: d.Service, Condition: d.Condition})
	}
	return out, nil
}

// bundleRuntime is runtime.json: the entry's `runtime` section and keel's
// extensions, with their defaults written out.
func bundleRuntime(kind bundle.Kind, e config.Image) *bundle.Runtime {
	rt := &bundle.Runtime{
		Restart:         e.Restart,
		StopGracePeriod: e.StopGracePeriod,
		OnFailure:       e.OnFailure,
		Timeout:         e.Timeout,
	}
	switch kind {
	case bundle.Service:
		if rt.Restart == "" {
			rt.Restart = bundle.RestartOnFailure
		}
	default:
		if rt.OnFailure == "" {
			rt.OnFailure = bundle.OnFailureContinue
		}
	}
	if r := e.Runtime; r != nil {
		rt.Cgroups = r.Cgroups
		rt.Mounts = r.Mounts
		rt.Mkdir = r.Mkdir
		rt.Namespace = r.Namespace
		rt.BindNS = r.BindNS
		rt.Interfaces = r.Interfaces
	}
	return rt
}

// processUser is the image's USER unless the entry gives a uid, with the
// entry's gid and additionalGids over it.
func processUser(e config.ImageConfig, image v1.Image, imageUserSpec string, ids map[string]uint32) (specs.User, error) {
	var u specs.User
	if e.UID == nil {
		var err error
		if u, err = imageUser(image, imageUserSpec); err != nil {
			return u, err
		}
	} else {
		n, err := e.UID.Resolve(ids)
		if err != nil {
			return u, fmt.Errorf("uid: %w", err)
		}
		u = specs.User{UID: n}
	}
	if e.GID != nil {
		n, err := e.GID.Resolve(ids)
		if err != nil {
			return u, fmt.Errorf("gid: %w", err)
		}
		u.GID = n
	}
	if e.AdditionalGids != nil {
		u.AdditionalGids = nil
		for _, g := range e.AdditionalGids {
			n, err := g.Resolve(ids)
			if err != nil {
				return u, fmt.Errorf("additionalGids: %w", err)
			}
			u.AdditionalGids = append(u.AdditionalGids, n)
		}
	}
	return u, nil
}

// mergeEnv applies the YAML's KEY=value entries over the image's: a key
// already set keeps its place and takes the new value, a new key is
// appended. PATH is added when neither sets it.
func mergeEnv(image, yaml []string) []string {
	out := slices.Clone(image)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range yaml {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	if _, ok := index["PATH"]; !ok {
		out = append(out, DefaultPath)
	}
	return out
}

// capabilities resolves a list as LinuxKit does: nil (not given) is none,
// a lone "all" is every capability keel knows, a lone "none" is none.
func capabilities(names []string) ([]string, error) {
	if len(names) == 1 {
		switch names[0] {
		case config.CapabilityAll:
			return config.AllCapabilities(), nil
		case config.CapabilityNone:
			return []string{}, nil
		}
	}
	out := []string{}
	for _, n := range names {
		c, err := config.NormalizeCapability(n)
		if err == nil && (c == config.CapabilityAll || c == config.CapabilityNone) {
			err = fmt.Errorf("%q must be the only capability listed", n)
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// mountList is LinuxKit's: the defaults, then tmpfs, binds and mounts,
// each replacing a mount at the same destination, sorted by destination
// (so that /dev comes before /dev/pts). Destinations are made absolute as
// runc resolves them (config.ContainerPath): LinuxKit passes a relative one
// through, and config.json should say where the mount really is.
func mountList(e config.ImageConfig, readonly bool) ([]specs.Mount, error) {
	byDst := map[string]specs.Mount{}
	for _, m := range defaultMounts(readonly) {
		byDst[m.Destination] = m
	}
	for _, t := range e.Tmpfs {
		dst, opts, err := config.ParseTmpfs(t)
		if err != nil {
			return nil, err
		}
		dst = config.ContainerPath(dst)
		byDst[dst] = specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts}
	}
	for _, b := range e.Binds {
		src, dst, opts, err := config.ParseBind(b)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(src) {
			return nil, fmt.Errorf("bind %q: volumes are not built by keel yet", b)
		}
		if opts == nil {
			opts = []string{"rw", "rbind", "rshared"}
		} else if !slices.Contains(opts, "rbind") && !slices.Contains(opts, "bind") {
			opts = append(opts, "rbind")
		}
		dst = config.ContainerPath(dst)
		byDst[dst] = specs.Mount{Destination: dst, Type: "bind", Source: path.Clean(src), Options: opts}
	}
	for _, m := range e.Mounts {
		if m.Type == "bind" && !path.IsAbs(m.Source) {
			return nil, fmt.Errorf("mount of %q at %s: volumes are not built by keel yet", m.Source, m.Destination)
		}
		m.Destination = config.ContainerPath(m.Destination)
		byDst[m.Destination] = m
	}
	out := make([]specs.Mount, 0, len(byDst))
	for _, m := range byDst {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}

// namespaces is LinuxKit's set: net, ipc and uts are the host's unless the
// entry says "new" (or "none" for net) or gives a path; pid is new unless
// "host"; a user namespace only when asked; mount and cgroup are always new.
func namespaces(e config.ImageConfig) ([]specs.LinuxNamespace, error) {
	var out []specs.LinuxNamespace
	add := func(t specs.LinuxNamespaceType, setting string, hostByDefault bool) {
		switch setting {
		case config.NamespaceHost, config.NamespaceRoot:
			return
		case "":
			if hostByDefault {
				return
			}
			out = append(out, specs.LinuxNamespace{Type: t})
		case config.NamespaceNew, config.NamespaceNone:
			out = append(out, specs.LinuxNamespace{Type: t})
		default:
			out = append(out, specs.LinuxNamespace{Type: t, Path: setting})
		}
	}
	add(specs.NetworkNamespace, e.Net, true)
	add(specs.IPCNamespace, e.Ipc, true)
	add(specs.UTSNamespace, e.Uts, true)
	add(specs.PIDNamespace, e.Pid, false)
	add(specs.UserNamespace, e.Userns, true)
	out = append(out, specs.LinuxNamespace{Type: specs.MountNamespace}, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	return out, nil
}
