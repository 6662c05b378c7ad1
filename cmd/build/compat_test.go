package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/testenv"
)

// The compatibility test: YAML as LinuxKit's documentation and its own
// examples and tests write it, through `keel validate` and `keel build`,
// with the bundle fields (config.json, runtime.json) LinuxKit's build
// gives for it. Each case is one or more files, merged in order as
// `linuxkit build a.yml b.yml` merges them.

// compatBase is the start of a case's first file: the kernel and init of
// the test registry ({{R}}).
const compatBase = `kernel:
  image: {{R}}/keel/kernel:test
  cmdline: console=ttyS0
init:
  - {{R}}/keel/init:test
`

// compatBuild is what a case's check looks at: the built initrd's root,
// and what validate and build printed.
type compatBuild struct {
	t              *testing.T
	root           string
	names          map[string]bool
	validateStderr string
	buildStderr    string
	cmdline        string
	files          []string
}

func (b *compatBuild) config(kind bundle.Kind, dir string) *specs.Spec {
	b.t.Helper()
	s, err := bundle.ReadConfig(filepath.Join(b.root, "containers", string(kind), dir, "config.json"))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *compatBuild) runtime(kind bundle.Kind, dir string) *bundle.Runtime {
	b.t.Helper()
	rt, err := bundle.ReadRuntime(filepath.Join(b.root, "containers", string(kind), dir, "runtime.json"))
	if err != nil {
		b.t.Fatal(err)
	}
	return rt
}

// mount is the config.json mount at dst.
func mountAt(s *specs.Spec, dst string) (specs.Mount, bool) {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

// keelCommand runs `keel ARGS` as main does and returns its stderr.
func keelCommand(t *testing.T, args ...string) (stderr string, err error) {
	t.Helper()
	f, ferr := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if ferr != nil {
		t.Fatal(ferr)
	}
	saved := os.Stderr
	os.Stderr = f
	err = dispatch(args)
	os.Stderr = saved
	f.Close()
	b, _ := os.ReadFile(f.Name())
	return string(b), err
}

func TestLinuxKitCompatibility(t *testing.T) {
	testenv.Tool(t, "cpio", "cpio")
	_, host := testImages(t)
	// An image whose org.mobyproject.config label gives defaults, as
	// LinuxKit's own images (getty, sshd, dhcpcd) carry them.
	labelled := image(t, []string{"/bin/sh"}, []file{{name: "bin/", dir: true}, {name: "bin/sh", data: "sh", mode: 0o755}})
	cf, err := labelled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{"org.mobyproject.config": `{"capabilities": ["CAP_SYS_ADMIN"], "binds": ["/etc/resolv.conf:/etc/resolv.conf"], "net": "host", "pid": "host", "readonly": true, "command": ["/label-cmd"], "runtime": {"mkdir": ["/var/label"]}}`}
	if labelled, err = mutate.Config(labelled, cfg); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/labelled:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, labelled); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	t.Setenv("SOURCE_DATE_EPOCH", "")

	for _, tc := range compatCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var files []string
			for i, y := range tc.files {
				p := filepath.Join(dir, string(rune('a'+i))+".yml")
				if err := os.WriteFile(p, []byte(strings.ReplaceAll(y, "{{R}}", host)), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, p)
			}
			b := &compatBuild{t: t, files: files}
			if b.validateStderr, err = keelCommand(t, append([]string{"validate"}, files...)...); err != nil {
				t.Fatalf("keel validate: %v", err)
			}
			out := initrd.Outputs{Dir: filepath.Join(dir, "out"), Name: "compat"}
			args := append([]string{"build", "-q", "-dir", out.Dir, "-name", out.Name}, files...)
			if b.buildStderr, err = keelCommand(t, args...); err != nil {
				t.Fatalf("keel build: %v\n%s", err, b.buildStderr)
			}
			names, root := cpioListing(t, out.Initrd())
			b.root, b.names = root, map[string]bool{}
			for _, n := range names {
				b.names[n] = true
			}
			cl, err := os.ReadFile(out.Cmdline())
			if err != nil {
				t.Fatal(err)
			}
			b.cmdline = strings.TrimSpace(string(cl))
			tc.check(t, b)
		})
	}
}

var compatCases = []struct {
	name  string
	files []string
	check func(t *testing.T, b *compatBuild)
}{
	{
		// LinuxKit's examples format a disk twice, or mount twice (dm-crypt
		// over loop): only service names must be unique, since onboot and
		// onshutdown bundles are NNN-name.
		name: "repeated onboot and onshutdown names",
		files: []string{compatBase + `onboot:
  - name: format
    image: {{R}}/keel/busybox:test
    command: [/bin/echo, first]
  - name: format
    image: {{R}}/keel/busybox:test
    command: [/bin/echo, second]
  - name: mount
    image: {{R}}/keel/busybox:test
onshutdown:
  - name: mount
    image: {{R}}/keel/busybox:test
    command: [/bin/echo, down]
  - name: mount
    image: {{R}}/keel/busybox:test
services:
  - name: getty
    image: {{R}}/keel/busybox:test
    uid: format
`},
		check: func(t *testing.T, b *compatBuild) {
			for dir, want := range map[string]string{"000-format": "/bin/echo first", "001-format": "/bin/echo second", "002-mount": "/bin/sh"} {
				if got := strings.Join(b.config(bundle.Onboot, dir).Process.Args, " "); got != want {
					t.Errorf("onboot/%s args %q, want %q", dir, got, want)
				}
			}
			if got := b.config(bundle.Onshutdown, "000-mount").Process.Args; !slices.Equal(got, []string{"/bin/echo", "down"}) {
				t.Errorf("onshutdown/000-mount args %q", got)
			}
			if !b.names["containers/onshutdown/001-mount/config.json"] {
				t.Error("no onshutdown/001-mount bundle")
			}
			// Ids from 100, one per entry in order; a repeated name is the
			// last one's (onboot 100-102, onshutdown 103-104), with a
			// warning at the place that uses it.
			if u := b.config(bundle.Service, "getty").Process.User.UID; u != 101 {
				t.Errorf("uid: format = %d, want 101 (the second format's)", u)
			}
			for _, out := range []string{b.validateStderr, b.buildStderr} {
				if !strings.Contains(out, b.files[0]+`:24:10: services[0].uid: "format" names 2 entries (onboot[0], onboot[1]): it is the id of the last, onboot[1]`) {
					t.Errorf("no warning for the repeated name in:\n%s", out)
				}
			}
		},
	},
	{
		// LinuxKit's tar-headers and reproducibility tests mount an overlay
		// at writeable-host-etc; runc takes a relative destination from the
		// container's root.
		name: "relative mount destinations",
		files: []string{compatBase + `services:
  - name: test
    image: {{R}}/keel/busybox:test
    binds: [/var/log:host-log]
    tmpfs: ["scratch:size=1m"]
    mounts:
      - type: overlay
        source: overlay
        destination: writeable-host-etc
        options: [rw, lowerdir=/etc, upperdir=/run/hostetc/upper, workdir=/run/hostetc/work]
`},
		check: func(t *testing.T, b *compatBuild) {
			s := b.config(bundle.Service, "test")
			for dst, want := range map[string]specs.Mount{
				"/writeable-host-etc": {Destination: "/writeable-host-etc", Type: "overlay", Source: "overlay", Options: []string{"rw", "lowerdir=/etc", "upperdir=/run/hostetc/upper", "workdir=/run/hostetc/work"}},
				"/host-log":           {Destination: "/host-log", Type: "bind", Source: "/var/log", Options: []string{"rw", "rbind", "rshared"}},
				"/scratch":            {Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			} {
				if m, ok := mountAt(s, dst); !ok || !reflect.DeepEqual(m, want) {
					t.Errorf("mount at %s = %+v, want %+v", dst, m, want)
				}
			}
			for _, m := range s.Mounts {
				if !strings.HasPrefix(m.Destination, "/") {
					t.Errorf("relative destination in config.json: %+v", m)
				}
			}
			for _, out := range []string{b.validateStderr, b.buildStderr} {
				for _, w := range []string{
					b.files[0] + `:9:13: services[0].binds[0]: relative destination "host-log"`,
					b.files[0] + `:10:13: services[0].tmpfs[0]: relative destination "scratch"`,
					b.files[0] + `:14:22: services[0].mounts[0].destination: relative destination "writeable-host-etc"`,
				} {
					if !strings.Contains(out, "keel: warning: "+w) {
						t.Errorf("no warning %q in:\n%s", w, out)
					}
				}
			}
		},
	},
	{
		// Every key of an image entry that LinuxKit's docs/yaml.md lists,
		// and where each lands.
		name: "every per-image key",
		files: []string{compatBase + `services:
  - name: all
    image: {{R}}/keel/busybox:test
    capabilities: [CAP_NET_ADMIN, CAP_SYS_ADMIN]
    ambient: [CAP_NET_ADMIN]
    binds: ["/etc:/host-etc:ro"]
    tmpfs: ["/run:size=1m"]
    mounts:
      - {type: proc, source: proc, destination: /hostproc}
    devices:
      - {path: /dev/null, type: c, major: 1, minor: 3, mode: "0666"}
    command: [/bin/sh, -c, "sleep 1"]
    env: [A=1]
    cwd: /tmp
    net: new
    pid: host
    ipc: new
    uts: new
    userns: new
    hostname: all.local
    readonly: true
    maskedPaths: [/proc/kcore]
    readonlyPaths: [/proc/sys]
    uid: 1000
    gid: 1001
    additionalGids: [20, all]
    noNewPrivileges: true
    oomScoreAdj: -100
    rootfsPropagation: shared
    cgroupsPath: /keel/all
    resources:
      memory: {limit: 134217728}
      pids: {limit: 64}
      blockIO: {weightDevice: [{major: 8, minor: 0, weight: 500}], throttleReadBpsDevice: [{major: 8, minor: 0, rate: 1048576}]}
    sysctl: {net.ipv4.ip_forward: "1"}
    rlimits: ["nofile,1024,4096"]
    uidMappings: [{containerID: 0, hostID: 100000, size: 65536}]
    gidMappings: [{containerID: 0, hostID: 100000, size: 65536}]
    annotations: {org.example: yes}
    runtime:
      cgroups: [/keel/extra]
      mkdir: [/var/lib/all]
      mounts: [{type: bind, source: /var/lib/all, destination: /var/lib/all-too, options: [rbind]}]
      interfaces: [{name: veth0, add: veth, peer: veth1}]
      bindNS: {net: /run/netns/all}
      namespace: all-ns
`},
		check: func(t *testing.T, b *compatBuild) {
			s := b.config(bundle.Service, "all")
			p := s.Process
			check := func(what string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					g, _ := json.Marshal(got)
					w, _ := json.Marshal(want)
					t.Errorf("%s = %s, want %s", what, g, w)
				}
			}
			check("args", p.Args, []string{"/bin/sh", "-c", "sleep 1"})
			check("cwd", p.Cwd, "/tmp")
			if !slices.Contains(p.Env, "A=1") {
				t.Errorf("env %q lacks A=1", p.Env)
			}
			check("effective", p.Capabilities.Effective, []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"})
			check("ambient", p.Capabilities.Ambient, []string{"CAP_NET_ADMIN"})
			check("user", p.User, specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{20, 100}})
			check("noNewPrivileges", p.NoNewPrivileges, true)
			check("oomScoreAdj", *p.OOMScoreAdj, -100)
			check("rlimits", p.Rlimits, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}})
			check("hostname", s.Hostname, "all.local")
			check("readonly", s.Root.Readonly, true)
			check("annotations", s.Annotations, map[string]string{"org.example": "yes"})
			l := s.Linux
			check("maskedPaths", l.MaskedPaths, []string{"/proc/kcore"})
			check("readonlyPaths", l.ReadonlyPaths, []string{"/proc/sys"})
			check("rootfsPropagation", l.RootfsPropagation, "shared")
			check("cgroupsPath", l.CgroupsPath, "/keel/all")
			check("sysctl", l.Sysctl, map[string]string{"net.ipv4.ip_forward": "1"})
			check("uidMappings", l.UIDMappings, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}})
			check("gidMappings", l.GIDMappings, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}})
			check("memory limit", *l.Resources.Memory.Limit, int64(134217728))
			check("pids limit", *l.Resources.Pids.Limit, int64(64))
			w := l.Resources.BlockIO.WeightDevice
			if len(w) != 1 || w[0].Major != 8 || w[0].Minor != 0 || *w[0].Weight != 500 {
				t.Errorf("blockIO weightDevice = %+v", w)
			}
			r := l.Resources.BlockIO.ThrottleReadBpsDevice
			if len(r) != 1 || r[0].Major != 8 || r[0].Rate != 1048576 {
				t.Errorf("blockIO throttleReadBpsDevice = %+v", r)
			}
			var ns []string
			for _, n := range l.Namespaces {
				ns = append(ns, string(n.Type)+"="+n.Path)
			}
			// net, ipc, uts and user new; pid the host's; mount and cgroup
			// always new.
			slices.Sort(ns)
			check("namespaces", ns, []string{"cgroup=", "ipc=", "mount=", "network=", "user=", "uts="})
			if len(l.Devices) != 1 || l.Devices[0].Path != "/dev/null" || l.Devices[0].Major != 1 || l.Devices[0].Minor != 3 || *l.Devices[0].FileMode != 0o666 {
				t.Errorf("devices = %+v", l.Devices)
			}
			for dst, want := range map[string]specs.Mount{
				"/host-etc": {Destination: "/host-etc", Type: "bind", Source: "/etc", Options: []string{"ro", "rbind"}},
				"/run":      {Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
				"/hostproc": {Destination: "/hostproc", Type: "proc", Source: "proc"},
			} {
				if m, ok := mountAt(s, dst); !ok || !reflect.DeepEqual(m, want) {
					t.Errorf("mount at %s = %+v, want %+v", dst, m, want)
				}
			}
			rt := b.runtime(bundle.Service, "all")
			check("runtime.cgroups", rt.Cgroups, []string{"/keel/extra"})
			check("runtime.mkdir", rt.Mkdir, []string{"/var/lib/all"})
			check("runtime.mounts", rt.Mounts, []specs.Mount{{Type: "bind", Source: "/var/lib/all", Destination: "/var/lib/all-too", Options: []string{"rbind"}}})
			check("runtime.interfaces", rt.Interfaces, []bundle.Interface{{Name: "veth0", Add: "veth", Peer: "veth1"}})
			check("runtime.bindNS.net", rt.BindNS.Net, "/run/netns/all")
			check("runtime.namespace", rt.Namespace, "all-ns")
		},
	},
	{
		// An image's org.mobyproject.config label gives defaults; each key
		// the entry sets replaces the label's, and binds.add and
		// capabilities.add add to it.
		name: "image label under the entry",
		files: []string{compatBase + `onboot:
  - name: label-only
    image: {{R}}/labelled:1
  - name: overridden
    image: {{R}}/labelled:1
    command: [/bin/sh, -c, "true"]
    net: new
    readonly: false
    capabilities.add: [CAP_NET_ADMIN]
    binds.add: [/var:/var]
`},
		check: func(t *testing.T, b *compatBuild) {
			l := b.config(bundle.Onboot, "000-label-only")
			if !slices.Equal(l.Process.Args, []string{"/label-cmd"}) || !l.Root.Readonly || !slices.Equal(l.Process.Capabilities.Effective, []string{"CAP_SYS_ADMIN"}) {
				t.Errorf("label only: args %q readonly %v caps %q", l.Process.Args, l.Root.Readonly, l.Process.Capabilities.Effective)
			}
			for _, n := range l.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace || n.Type == specs.PIDNamespace {
					t.Errorf("label says net and pid host, config.json has a %s namespace", n.Type)
				}
			}
			if _, ok := mountAt(l, "/etc/resolv.conf"); !ok {
				t.Error("the label's bind is missing")
			}
			if rt := b.runtime(bundle.Onboot, "000-label-only"); !slices.Equal(rt.Mkdir, []string{"/var/label"}) {
				t.Errorf("runtime.mkdir %q, want the label's", rt.Mkdir)
			}
			o := b.config(bundle.Onboot, "001-overridden")
			if !slices.Equal(o.Process.Args, []string{"/bin/sh", "-c", "true"}) || o.Root.Readonly ||
				!slices.Equal(o.Process.Capabilities.Effective, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) {
				t.Errorf("overridden: args %q readonly %v caps %q", o.Process.Args, o.Root.Readonly, o.Process.Capabilities.Effective)
			}
			if !slices.ContainsFunc(o.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
				t.Error("net: new gave no network namespace")
			}
			_, resolv := mountAt(o, "/etc/resolv.conf")
			_, v := mountAt(o, "/var")
			if !resolv || !v {
				t.Errorf("binds.add: the label's bind %v, the added one %v", resolv, v)
			}
		},
	},
	{
		// `linuxkit build a.yml b.yml`: kernel fields of a later file
		// replace the earlier ones; init, onboot, onshutdown, services and
		// files are appended in file order, so ids and NNN follow it.
		name: "merge order of several files",
		files: []string{
			compatBase + `onboot:
  - name: first
    image: {{R}}/keel/busybox:test
services:
  - name: web
    image: {{R}}/keel/busybox:test
files:
  - path: etc/from-a
    contents: a
`,
			`kernel:
  cmdline: console=ttyS0 from-b
onboot:
  - name: second
    image: {{R}}/keel/busybox:test
services:
  - name: db
    image: {{R}}/keel/busybox:test
    uid: web
files:
  - path: etc/from-b
    contents: b
`},
		check: func(t *testing.T, b *compatBuild) {
			if b.cmdline != "console=ttyS0 from-b" {
				t.Errorf("cmdline %q, want the later file's", b.cmdline)
			}
			for _, p := range []string{"containers/onboot/000-first/config.json", "containers/onboot/001-second/config.json",
				"containers/services/web/config.json", "containers/services/db/config.json", "etc/from-a", "etc/from-b"} {
				if !b.names[p] {
					t.Errorf("%s missing", p)
				}
			}
			// Ids in merged order: first 100, second 101, web 102, db 103.
			if u := b.config(bundle.Service, "db").Process.User.UID; u != 102 {
				t.Errorf("db's uid: web = %d, want 102", u)
			}
		},
	},
	{
		// What the guest's modprobe needs: depmod's files for the kernel's
		// module tree, over any the kernel image's tar holds.
		name:  "module tree for modprobe",
		files: []string{compatBase},
		check: func(t *testing.T, b *compatBuild) {
			for _, f := range []string{"modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep", "modules.symbols", "modules.symbols.bin", "modules.builtin.bin"} {
				if !b.names["lib/modules/6.1.0-test/"+f] {
					t.Errorf("lib/modules/6.1.0-test/%s missing", f)
				}
			}
			dep, _ := os.ReadFile(filepath.Join(b.root, "lib/modules/6.1.0-test/modules.dep"))
			if string(dep) != "kernel/virtio.ko:\n" {
				t.Errorf("modules.dep = %q", dep)
			}
		},
	},
}
