package config

import (
	"fmt"
	"math"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.yaml.in/yaml/v3"

	"github.com/keel-os/keel/pkg/bundle"
)

func (d *decoder) images(n *yaml.Node, field string) []Image {
	out := []Image{}
	d.list(n, field, func(_ int, e *yaml.Node, f string) {
		if img, ok := d.image(e, f, field); ok {
			out = append(out, img)
		}
	})
	return out
}

// image decodes one entry of list ("onboot", "onshutdown" or "services").
func (d *decoder) image(n *yaml.Node, field, list string) (Image, bool) {
	img := Image{Pos: d.pos(n)}
	before := len(d.errs)
	var nameNode, imageNode *yaml.Node
	fs := d.imageConfigFields(&img.ImageConfig, field)
	fs["name"] = func(v *yaml.Node) {
		// The name becomes a bundle directory, a container id and a log
		// file name.
		nameNode = v
		img.NamePos = d.pos(resolve(v))
		if d.str(v, field+".name", &img.Name) && !bundle.ValidName(img.Name) {
			d.errorf(resolve(v), field+".name", "invalid name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", img.Name)
		}
	}
	fs["image"] = func(v *yaml.Node) {
		imageNode = v
		if d.str(v, field+".image", &img.Image) {
			d.imageRef(v, field+".image", img.Image)
		}
	}
	only := func(key string, lists ...string) bool {
		return slices.Contains(lists, list)
	}
	fs["restart"] = func(v *yaml.Node) {
		f := field + ".restart"
		if !only("restart", "services") {
			d.errorf(resolve(v), f, "restart applies to services only")
			return
		}
		d.oneOf(v, f, &img.Restart, bundle.RestartAlways, bundle.RestartOnFailure, bundle.RestartNever)
	}
	fs["stopGracePeriod"] = func(v *yaml.Node) {
		f := field + ".stopGracePeriod"
		if !only("stopGracePeriod", "services", "onboot") {
			d.errorf(resolve(v), f, "stopGracePeriod applies to services and onboot only")
			return
		}
		if !d.str(v, f, &img.StopGracePeriod) {
			return
		}
		if dur, err := time.ParseDuration(img.StopGracePeriod); err != nil || dur < 0 {
			d.errorf(resolve(v), f, "invalid duration %q: want a Go duration such as \"10s\" or \"1m30s\"", img.StopGracePeriod)
		}
	}
	fs["onFailure"] = func(v *yaml.Node) {
		f := field + ".onFailure"
		if !only("onFailure", "onboot", "onshutdown") {
			d.errorf(resolve(v), f, "onFailure applies to onboot and onshutdown only (services have restart)")
			return
		}
		d.oneOf(v, f, &img.OnFailure, bundle.OnFailureContinue, bundle.OnFailureHalt)
	}
	fs["timeout"] = func(v *yaml.Node) {
		f := field + ".timeout"
		if !only("timeout", "onboot", "onshutdown") {
			// A service runs until stopped: how long it may take to stop
			// is its stopGracePeriod.
			d.errorf(resolve(v), f, "timeout applies to onboot and onshutdown only (services have stopGracePeriod)")
			return
		}
		if !d.str(v, f, &img.Timeout) {
			return
		}
		// Zero is refused too: a container killed before it starts is a
		// typo, not a policy; no limit is written by leaving the key out.
		if dur, err := time.ParseDuration(img.Timeout); err != nil || dur <= 0 {
			d.errorf(resolve(v), f, "invalid duration %q: want a Go duration such as \"30s\" or \"5m\"", img.Timeout)
		}
	}
	for _, key := range []string{"healthcheck", "depends_on"} {
		decode := fs[key]
		fs[key] = func(v *yaml.Node) {
			if !only(key, "services") {
				d.errorf(resolve(v), field+"."+key, "%s applies to services only", key)
				return
			}
			decode(v)
		}
	}
	if !d.mapping(n, field, fs) {
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

// oneOf decodes a string that must be one of values.
func (d *decoder) oneOf(v *yaml.Node, field string, out *string, values ...string) {
	if !d.str(v, field, out) {
		return
	}
	if !slices.Contains(values, *out) {
		d.errorf(resolve(v), field, "invalid value %q: want %s", *out, quoteOr(values))
	}
}

func quoteOr(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// imageConfigFields are the keys an image entry and an
// org.mobyproject.config label share.
func (d *decoder) imageConfigFields(ic *ImageConfig, field string) fields {
	strs := func(key string, out *[]string, check func(string) error) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			f := field + "." + key
			*out = d.strings(v, f)
			if check != nil {
				d.checkEach(v, f, *out, check)
			}
		}
	}
	str := func(key string, out *string, check func(string) error) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			f := field + "." + key
			if d.str(v, f, out) && check != nil {
				if err := check(*out); err != nil {
					d.errorf(resolve(v), f, "%v", err)
				}
			}
		}
	}
	boolp := func(key string, out **bool) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			var b bool
			if d.boolean(v, field+"."+key, &b) {
				*out = &b
			}
		}
	}
	oci := func(key string, out any) func(v *yaml.Node) {
		return func(v *yaml.Node) { d.value(v, field+"."+key, reflect.ValueOf(out).Elem()) }
	}
	caps := func(key string, out *[]string, special bool) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			f := field + "." + key
			*out = d.strings(v, f)
			for i, c := range *out {
				norm, err := NormalizeCapability(c)
				if err == nil && (norm == CapabilityAll || norm == CapabilityNone) && (!special || len(*out) > 1) {
					err = fmt.Errorf("%q must be the only entry of %s", c, key)
				}
				if err != nil {
					d.errorf(elem(v, i), fmt.Sprintf("%s[%d]", f, i), "%v", err)
					continue
				}
				(*out)[i] = norm
			}
		}
	}
	binds := func(key string, out *[]string) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			strs(key, out, checkBind)(v)
			for i, b := range *out {
				if _, dst, _, err := ParseBind(b); err == nil {
					d.relativeDestination(elem(v, i), fmt.Sprintf("%s.%s[%d]", field, key, i), dst)
				}
			}
		}
	}
	ns := func(key string, out *string, extra ...string) func(v *yaml.Node) {
		return func(v *yaml.Node) { d.namespace(v, field+"."+key, out, extra...) }
	}
	return fields{
		"capabilities":     caps("capabilities", &ic.Capabilities, true),
		"capabilities.add": caps("capabilities.add", &ic.CapabilitiesAdd, false),
		"ambient":          caps("ambient", &ic.Ambient, true),
		"mounts": func(v *yaml.Node) {
			f := field + ".mounts"
			ic.Mounts = []specs.Mount{}
			if !d.value(v, f, reflect.ValueOf(&ic.Mounts).Elem()) {
				return
			}
			for i := range ic.Mounts {
				if err := completeMount(&ic.Mounts[i]); err != nil {
					d.errorf(elem(v, i), fmt.Sprintf("%s[%d]", f, i), "%v", err)
					continue
				}
				at := elem(v, i)
				if dn := mappingValue(at, "destination"); dn != nil {
					at = dn
				}
				d.relativeDestination(at, fmt.Sprintf("%s[%d].destination", f, i), ic.Mounts[i].Destination)
			}
		},
		"binds":     binds("binds", &ic.Binds),
		"binds.add": binds("binds.add", &ic.BindsAdd),
		"tmpfs": func(v *yaml.Node) {
			f := field + ".tmpfs"
			strs("tmpfs", &ic.Tmpfs, checkTmpfs)(v)
			for i, t := range ic.Tmpfs {
				if dst, _, err := ParseTmpfs(t); err == nil {
					d.relativeDestination(elem(v, i), fmt.Sprintf("%s[%d]", f, i), dst)
				}
			}
		},
		"devices": func(v *yaml.Node) {
			ic.Devices = []Device{}
			d.list(v, field+".devices", func(_ int, e *yaml.Node, f string) {
				if dev, ok := d.device(e, f); ok {
					ic.Devices = append(ic.Devices, dev)
				}
			})
		},
		"command":       strs("command", &ic.Command, nil),
		"env":           strs("env", &ic.Env, checkEnv),
		"cwd":           str("cwd", &ic.Cwd, checkAbs),
		"net":           ns("net", &ic.Net, NamespaceNone),
		"pid":           ns("pid", &ic.Pid),
		"ipc":           ns("ipc", &ic.Ipc),
		"uts":           ns("uts", &ic.Uts),
		"userns":        ns("userns", &ic.Userns),
		"hostname":      str("hostname", &ic.Hostname, checkHostname),
		"readonly":      boolp("readonly", &ic.Readonly),
		"maskedPaths":   strs("maskedPaths", &ic.MaskedPaths, checkAbs),
		"readonlyPaths": strs("readonlyPaths", &ic.ReadonlyPaths, checkAbs),
		"uid": func(v *yaml.Node) {
			var id ID
			if d.id(v, field+".uid", &id) {
				ic.UID = &id
			}
		},
		"gid": func(v *yaml.Node) {
			var id ID
			if d.id(v, field+".gid", &id) {
				ic.GID = &id
			}
		},
		"additionalGids": func(v *yaml.Node) {
			ic.AdditionalGids = []ID{}
			d.list(v, field+".additionalGids", func(_ int, e *yaml.Node, f string) {
				var id ID
				if d.id(e, f, &id) {
					ic.AdditionalGids = append(ic.AdditionalGids, id)
				}
			})
		},
		"noNewPrivileges": boolp("noNewPrivileges", &ic.NoNewPrivileges),
		"oomScoreAdj": func(v *yaml.Node) {
			f := field + ".oomScoreAdj"
			if i, ok := d.integer(v, f); ok {
				if i < -1000 || i > 1000 {
					d.errorf(resolve(v), f, "%d is out of range: want -1000 to 1000", i)
					return
				}
				n := int(i)
				ic.OOMScoreAdj = &n
			}
		},
		"rootfsPropagation": str("rootfsPropagation", &ic.RootfsPropagation, checkPropagation),
		"cgroupsPath":       str("cgroupsPath", &ic.CgroupsPath, nil),
		"resources":         oci("resources", &ic.Resources),
		"sysctl":            oci("sysctl", &ic.Sysctl),
		"rlimits":           strs("rlimits", &ic.Rlimits, checkRlimit),
		"uidMappings":       oci("uidMappings", &ic.UIDMappings),
		"gidMappings":       oci("gidMappings", &ic.GIDMappings),
		"annotations":       oci("annotations", &ic.Annotations),
		"runtime": func(v *yaml.Node) {
			f := field + ".runtime"
			var rt Runtime
			if !d.value(v, f, reflect.ValueOf(&rt).Elem()) {
				return
			}
			// Relative paths are inside the bundle, absolute ones on the host.
			for i, m := range rt.Mounts {
				if m.Destination == "" {
					d.errorf(resolve(v), fmt.Sprintf("%s.mounts[%d]", f, i), "destination is required")
				}
			}
			ic.Runtime = &rt
		},
		"healthcheck": func(v *yaml.Node) {
			if h, ok := d.healthcheck(v, field+".healthcheck"); ok {
				ic.Healthcheck = h
			}
		},
		"depends_on": func(v *yaml.Node) {
			if deps, ok := d.dependsOn(v, field+".depends_on"); ok {
				ic.DependsOn = deps
			}
		},
	}
}

func (d *decoder) device(n *yaml.Node, field string) (Device, bool) {
	var dev Device
	before := len(d.errs)
	var hasMode bool
	if !d.mapping(n, field, fields{
		"path": func(v *yaml.Node) { d.str(v, field+".path", &dev.Path) },
		"type": func(v *yaml.Node) { d.oneOf(v, field+".type", &dev.Type, "c", "b", "u", "p", "a") },
		"major": func(v *yaml.Node) {
			if i, ok := d.integer(v, field+".major"); ok {
				dev.Major = i
			}
		},
		"minor": func(v *yaml.Node) {
			if i, ok := d.integer(v, field+".minor"); ok {
				dev.Minor = i
			}
		},
		"mode": func(v *yaml.Node) {
			hasMode = true
			if m, ok := d.octalMode(v, field+".mode", 0o777); ok {
				dev.Mode = unixMode(m)
			}
		},
	}) {
		return dev, false
	}
	switch {
	case dev.Path == "":
		d.errorf(n, field, "path is required (a device path, or \"all\")")
	case dev.Type == "":
		d.errorf(n, field, "type is required (c, b, u, p or a)")
	case dev.Path != "all" && !path.IsAbs(dev.Path):
		d.errorf(n, field, "invalid path %q: want an absolute path or \"all\"", dev.Path)
	case dev.Path != "all" && !hasMode:
		d.errorf(n, field, "mode is required for a device node")
	}
	return dev, len(d.errs) == before
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

// relativeDestination warns about a mount destination that is not
// absolute. LinuxKit's build passes one through and runc takes it from the
// container's root (LinuxKit's own tests mount at "writeable-host-etc"), so
// keel accepts it too; the spec makes it absolute (ContainerPath).
func (d *decoder) relativeDestination(n *yaml.Node, field, dst string) {
	if path.IsAbs(dst) {
		return
	}
	d.warnf(n, field, "relative destination %q is taken from the container's root, as runc does: %q (write it so)", dst, ContainerPath(dst))
}

// ContainerPath is where runc mounts a destination: a relative one is
// taken from the container's root, and the path is cleaned, so ".." cannot
// climb above that root.
func ContainerPath(dst string) string {
	return path.Clean("/" + dst)
}

// mappingValue is the value of key in the mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

func checkEnv(s string) error {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("invalid variable %q: want KEY=value", s)
	}
	return nil
}

func checkAbs(s string) error {
	if !path.IsAbs(s) {
		return fmt.Errorf("invalid path %q: want an absolute path", s)
	}
	return nil
}

func checkHostname(s string) error {
	if len(s) > 64 || strings.ContainsAny(s, "/ \t\n\x00") {
		return fmt.Errorf("invalid hostname %q", s)
	}
	return nil
}

func checkPropagation(s string) error {
	switch s {
	case "", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable":
		return nil
	}
	return fmt.Errorf("invalid value %q: want shared, slave, private or unbindable (or their r- forms)", s)
}

// ParseBind splits "src:dst[:opts]" into its parts; opts are separated by
// commas. src is an absolute path or the name of a volume; dst should be
// absolute, and a relative one is taken from the container's root
// (ContainerPath), as runc does.
func ParseBind(s string) (src, dst string, opts []string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", nil, fmt.Errorf("invalid bind %q: want src:dst[:options]", s)
	}
	src, dst = parts[0], parts[1]
	if dst == "" {
		return "", "", nil, fmt.Errorf("invalid bind %q: the destination is empty", s)
	}
	if !path.IsAbs(src) && !validVolumeName.MatchString(src) {
		return "", "", nil, fmt.Errorf("invalid bind %q: the source must be an absolute path or a volume name", s)
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

// ParseTmpfs splits "dst[:opts]"; a relative dst is taken from the
// container's root (ContainerPath), as runc does.
func ParseTmpfs(s string) (dst string, opts []string, err error) {
	dst, o, hasOpts := strings.Cut(s, ":")
	if dst == "" {
		return "", nil, fmt.Errorf("invalid tmpfs %q: want /destination[:options]", s)
	}
	if hasOpts {
		for _, opt := range strings.Split(o, ",") {
			if opt == "" || strings.Contains(opt, ":") {
				return "", nil, fmt.Errorf("invalid tmpfs %q: want /destination[:opt1,opt2]", s)
			}
			opts = append(opts, opt)
		}
	}
	return dst, opts, nil
}

func checkTmpfs(s string) error {
	_, _, err := ParseTmpfs(s)
	return err
}

// Unlimited is an rlimit of "unlimited".
const Unlimited = math.MaxUint64

var rlimitNames = []string{
	"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
	"RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
	"RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO",
	"RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
}

// ParseRlimit reads "name,soft,hard" ("nofile,1024,4096"; a value may be
// "unlimited"; the name may have the RLIMIT_ prefix, in any case).
func ParseRlimit(s string) (specs.POSIXRlimit, error) {
	parts := strings.Split(s, ",")
	if len(parts) == 1 {
		return specs.POSIXRlimit{}, fmt.Errorf("invalid rlimit %q: want name,soft,hard (quote it inside [ ]: [\"nofile,1024,4096\"])", s)
	}
	if len(parts) != 3 {
		return specs.POSIXRlimit{}, fmt.Errorf("invalid rlimit %q: want name,soft,hard", s)
	}
	name := strings.ToUpper(strings.TrimSpace(parts[0]))
	if !strings.HasPrefix(name, "RLIMIT_") {
		name = "RLIMIT_" + name
	}
	if !slices.Contains(rlimitNames, name) {
		return specs.POSIXRlimit{}, fmt.Errorf("invalid rlimit %q: unknown limit %q", s, strings.TrimSpace(parts[0]))
	}
	var v [2]uint64
	for i, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if strings.EqualFold(p, "unlimited") {
			v[i] = Unlimited
			continue
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return specs.POSIXRlimit{}, fmt.Errorf("invalid rlimit %q: %q is not a number or \"unlimited\"", s, p)
		}
		v[i] = n
	}
	if v[0] > v[1] {
		return specs.POSIXRlimit{}, fmt.Errorf("invalid rlimit %q: the soft limit is above the hard one", s)
	}
	return specs.POSIXRlimit{Type: name, Soft: v[0], Hard: v[1]}, nil
}

func checkRlimit(s string) error {
	_, err := ParseRlimit(s)
	return err
}

// completeMount fills in what LinuxKit lets a mount leave out: the type
// from the source (proc, sysfs, ...) or a /dev destination, the source from
// the type, the destination from the type.
func completeMount(m *specs.Mount) error {
	if m.Type == "" {
		switch m.Source {
		case "mqueue", "devpts", "proc", "sysfs", "cgroup", "cgroup2":
			m.Type = m.Source
		}
	}
	if m.Type == "" && m.Destination == "/dev" {
		m.Type = "tmpfs"
	}
	if m.Type == "" {
		return fmt.Errorf("the mount at %q has no type", m.Destination)
	}
	if m.Source == "" {
		m.Source = m.Type
	}
	if m.Destination == "" {
		m.Destination = map[string]string{"proc": "/proc", "devpts": "/dev/pts", "sysfs": "/sys",
			"cgroup": "/sys/fs/cgroup", "cgroup2": "/sys/fs/cgroup", "mqueue": "/dev/mqueue"}[m.Type]
	}
	if m.Destination == "" {
		return fmt.Errorf("the %s mount has no destination", m.Type)
	}
	return nil
}

func (d *decoder) namespace(n *yaml.Node, field string, out *string, extra ...string) {
	if !d.str(n, field, out) {
		return
	}
	switch v := *out; {
	case v == "", v == NamespaceNew, v == NamespaceHost, v == NamespaceRoot, slices.Contains(extra, v):
	case path.IsAbs(v):
		*out = path.Clean(v)
	default:
		d.errorf(resolve(n), field, "invalid value %q: want %s, or the absolute path of a namespace",
			v, quoteOr(append([]string{NamespaceHost, NamespaceNew}, extra...)))
	}
}
