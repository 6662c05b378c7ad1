package oci

import (
	"fmt"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/oci/bundle"
)

// DefaultCapabilities is what a container gets when its YAML entry lists
// none: LinuxKit's default set (Docker's, minus nothing).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultPath is PATH for an image whose config sets none: without it a
// relative command could not be found inside the container.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maskedPaths and readonlyPaths are runc's defaults: kernel interfaces a
// container has no business reading or writing.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// defaultMounts are the filesystems every container gets, in mount order.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// Type "cgroup" rather than "cgroup2": runc mounts cgroup2 for it on
		// a unified host and, where a fresh cgroup2 mount is refused (no
		// cgroup namespace), falls back to a bind mount of the container's
		// own cgroup. A literal "cgroup2" mount gets no such fallback.
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// RuntimeSpec builds the OCI runtime spec (a bundle's config.json) of one
// YAML entry of the given kind, from the entry and its image: the image's
// config gives the defaults, and its /etc/passwd a named USER.
func RuntimeSpec(kind bundle.Kind, img config.Image, image v1.Image) (*specs.Spec, error) {
	var cc v1.Config
	if image != nil {
		ic, err := image.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("spec for %s: read image config: %w", img.Name, err)
		}
		cc = ic.Config
	}
	args := img.Command
	if args == nil {
		args = append(slices.Clone(cc.Entrypoint), cc.Cmd...)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("spec for %s: no command: the image has no entrypoint or cmd and the YAML gives none", img.Name)
	}
	user, err := imageUser(image, cc.User)
	if err != nil {
		return nil, fmt.Errorf("spec for %s: %w", img.Name, err)
	}
	cwd := cc.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	caps, err := capabilities(img.Capabilities)
	if err != nil {
		return nil, fmt.Errorf("spec for %s: %w", img.Name, err)
	}
	mounts, err := mounts(img.Binds)
	if err != nil {
		return nil, fmt.Errorf("spec for %s: %w", img.Name, err)
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: bundle.RootfsDir},
		Process: &specs.Process{
			Args: args,
			Env:  mergeEnv(cc.Env, img.Env),
			Cwd:  cwd,
			User: user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			// runc's default; a service that needs more says so in its YAML.
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			Namespaces:  namespaces(img),
			CgroupsPath: "/" + string(kind) + "/" + img.Name,
			Resources: &specs.LinuxResources{
				// Deny every device, as runc does; runc then allows the
				// standard ones (null, zero, tty, ptmx, ...) itself.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths:   slices.Clone(maskedPaths),
			ReadonlyPaths: slices.Clone(readonlyPaths),
		},
	}
	return s, nil
}

// BundleRuntime builds a bundle's runtime.json. Nothing in the YAML schema
// needs host-side preparation yet, so it is empty; it is written anyway so
// that every bundle has the same files.
func BundleRuntime(kind bundle.Kind, img config.Image) *bundle.Runtime {
	return &bundle.Runtime{}
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

// capabilities resolves the YAML's list: nil is the default set, "all" is
// every capability keel knows; names are already normalised by config.
func capabilities(names []string) ([]string, error) {
	if names == nil {
		return slices.Clone(DefaultCapabilities), nil
	}
	if slices.Contains(names, config.CapabilityAll) {
		return config.AllCapabilities(), nil
	}
	out := []string{}
	for _, n := range names {
		c, err := config.NormalizeCapability(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// mounts is the default set with the YAML's binds applied: a bind onto a
// default mount's destination replaces it, any other is added after them.
func mounts(binds []string) ([]specs.Mount, error) {
	out := defaultMounts()
	for _, b := range binds {
		src, dst, opts, err := config.ParseBind(b)
		if err != nil {
			return nil, err
		}
		m := specs.Mount{Destination: path.Clean(dst), Type: "bind", Source: path.Clean(src), Options: bindOptions(opts)}
		if i := slices.IndexFunc(out, func(o specs.Mount) bool { return o.Destination == m.Destination }); i >= 0 {
			out[i] = m
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// bindOptions makes a bind recursive and read-write unless it says "ro".
func bindOptions(opts []string) []string {
	out := []string{"rbind"}
	if !slices.Contains(opts, "ro") && !slices.Contains(opts, "rw") {
		out = append(out, "rw")
	}
	for _, o := range opts {
		if o != "bind" && o != "rbind" {
			out = append(out, o)
		}
	}
	return out
}

// namespaces is LinuxKit's set: pid, network, ipc, uts and mount, each new
// unless the entry shares the host's ("host") or joins one by path.
func namespaces(img config.Image) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	add := func(t specs.LinuxNamespaceType, setting string) {
		switch setting {
		case config.NamespaceHost:
			return
		case "", config.NamespaceNew:
			out = append(out, specs.LinuxNamespace{Type: t})
		default:
			out = append(out, specs.LinuxNamespace{Type: t, Path: setting})
		}
	}
	add(specs.PIDNamespace, img.Pid)
	add(specs.NetworkNamespace, img.Net)
	add(specs.IPCNamespace, "")
	add(specs.UTSNamespace, "")
	add(specs.MountNamespace, "")
	return out
}
