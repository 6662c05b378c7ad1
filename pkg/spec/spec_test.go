package spec

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
)

// imageConfig is an image with no layers and the given config.
func imageConfig(c v1.Config) v1.Image {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Config: c})
	if err != nil {
		panic(err)
	}
	return img
}

// RuntimeSpec is Specs without runtime.json and with no uid names.
func RuntimeSpec(kind bundle.Kind, img config.Image, image v1.Image) (*specs.Spec, error) {
	s, _, err := Specs(kind, img, image, nil)
	return s, err
}

func TestRuntimeSpecDefaults(t *testing.T) {
	ic := imageConfig(v1.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo hi"},
		Env:        []string{"PATH=/bin", "A=1"},
		WorkingDir: "/work",
		User:       "1000:50",
	})
	s, rt, err := Specs(bundle.Onboot, config.Image{Name: "x", Image: "busybox"}, ic, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if !reflect.DeepEqual(p.Args, []string{"/bin/sh", "-c", "echo hi"}) {
		t.Errorf("args = %q", p.Args)
	}
	if !reflect.DeepEqual(p.Env, []string{"PATH=/bin", "A=1"}) {
		t.Errorf("env = %q", p.Env)
	}
	if p.Cwd != "/work" || p.User.UID != 1000 || p.User.GID != 50 || p.Terminal {
		t.Errorf("cwd %q user %+v terminal %v", p.Cwd, p.User, p.Terminal)
	}
	// LinuxKit's default: no capabilities at all.
	if c := p.Capabilities; len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Ambient) != 0 {
		t.Errorf("capabilities = %+v", p.Capabilities)
	}
	if len(p.Rlimits) != 0 || p.NoNewPrivileges || p.OOMScoreAdj != nil {
		t.Errorf("rlimits %+v nnp %v oom %v", p.Rlimits, p.NoNewPrivileges, p.OOMScoreAdj)
	}
	if s.Root.Path != "rootfs" || s.Root.Readonly {
		t.Errorf("root = %+v", s.Root)
	}
	if got := nsString(s); got != "pid=,mount=,cgroup=" {
		t.Errorf("namespaces = %s", got)
	}
	want := []string{
		"/dev=tmpfs:nosuid,strictatime,mode=755,size=65536k",
		"/dev/pts=devpts:nosuid,noexec,newinstance,ptmxmode=0666,mode=0620",
		"/proc=proc:nosuid,nodev,noexec,relatime",
		"/sys=sysfs:nosuid,noexec,nodev",
		"/sys/fs/cgroup=cgroup:nosuid,noexec,nodev,relatime,ro",
	}
	if got := mountStrings(s); !reflect.DeepEqual(got, want) {
		t.Errorf("mounts =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.Linux.CgroupsPath != "/onboot/x" {
		t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
	if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if !reflect.DeepEqual(rt, &bundle.Runtime{OnFailure: bundle.OnFailureContinue}) {
		t.Errorf("runtime = %+v", rt)
	}
	b, err := bundle.MarshalConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `""`) {
		t.Errorf("config.json has an empty string:\n%s", b)
	}
	if back.Version != specs.Version {
		t.Errorf("version = %q", back.Version)
	}
}

func nsString(s *specs.Spec) string {
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type)+"="+n.Path)
	}
	return strings.Join(ns, ",")
}

func mountStrings(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		src := ""
		if m.Type == "bind" {
			src = m.Source + "->"
		}
		out = append(out, src+m.Destination+"="+m.Type+":"+strings.Join(m.Options, ","))
	}
	return out
}

// parseEntry decodes one onboot or services entry from YAML.
func parseEntry(t *testing.T, list, yml string) (config.Image, map[string]uint32) {
	t.Helper()
	cfg, err := config.Parse("t.yml", []byte(list+":\n  - "+strings.ReplaceAll(strings.TrimSpace(yml), "\n", "\n    ")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := map[string][]config.Image{"onboot": cfg.Onboot, "services": cfg.Services, "onshutdown": cfg.Onshutdown}[list]
	return l[0], cfg.IDs()
}

func TestRuntimeSpecFromYAML(t *testing.T) {
	ic := imageConfig(v1.Config{Cmd: []string{"sleep", "1"}, Env: []string{"A=1", "B=2"}})
	img, ids := parseEntry(t, "services", `
name: svc
image: x
command: [/bin/true]
env: [B=3, C=4]
cwd: /srv
binds: ["/var/log:/var/log", "/etc/ssl:/etc/ssl:ro", "/dev:/dev"]
tmpfs: ["/run:size=1m,mode=755", /tmp]
mounts:
  - {type: tmpfs, destination: /dev/shm, options: [nosuid]}
  - {source: mqueue}
capabilities: [net_admin, CAP_SYS_ADMIN]
ambient: [CAP_NET_RAW]
net: new
ipc: new
uts: /proc/1/ns/uts
pid: host
userns: new
uidMappings: [{containerID: 0, hostID: 1000, size: 10}]
gidMappings: [{containerID: 0, hostID: 1000, size: 10}]
hostname: box
readonly: true
maskedPaths: [/proc/kcore]
readonlyPaths: [/proc/sys]
uid: svc
gid: 7
additionalGids: [svc, 20]
noNewPrivileges: true
oomScoreAdj: -500
rootfsPropagation: shared
cgroupsPath: /keel/svc
resources: {memory: {limit: 1048576}, pids: {limit: 10}, cpu: {shares: 512, cpus: "0"}}
sysctl: {net.ipv4.ip_forward: "1"}
rlimits: ["nofile,1024,unlimited", "RLIMIT_CORE,0,0"]
annotations: {a: b}
devices:
  - {path: /dev/console, type: c, major: 5, minor: 1, mode: "0666"}
  - {path: all, type: b}
runtime:
  mkdir: [/var/lib/svc]
  cgroups: [svc]
  interfaces: [{name: eth1}, {add: veth, peer: veth-svc}]
  bindNS: {net: /run/netns/svc}
  namespace: other
restart: always
stopGracePeriod: 3s
`)
	s, rt, err := Specs(bundle.Service, img, ic, ids)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if !reflect.DeepEqual(p.Args, []string{"/bin/true"}) || p.Cwd != "/srv" {
		t.Errorf("args = %q cwd %q", p.Args, p.Cwd)
	}
	if want := []string{"A=1", "B=3", "C=4", DefaultPath}; !reflect.DeepEqual(p.Env, want) {
		t.Errorf("env = %q, want %q", p.Env, want)
	}
	c := p.Capabilities
	if !reflect.DeepEqual(c.Effective, []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}) ||
		!reflect.DeepEqual(c.Bounding, []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"}) ||
		!reflect.DeepEqual(c.Permitted, c.Bounding) || !reflect.DeepEqual(c.Inheritable, c.Bounding) ||
		!reflect.DeepEqual(c.Ambient, []string{"CAP_NET_RAW"}) {
		t.Errorf("caps = %+v", c)
	}
	if u := p.User; u.UID != 100 || u.GID != 7 || !reflect.DeepEqual(u.AdditionalGids, []uint32{100, 20}) {
		t.Errorf("user = %+v", u)
	}
	if !p.NoNewPrivileges || p.OOMScoreAdj == nil || *p.OOMScoreAdj != -500 {
		t.Errorf("nnp %v oom %v", p.NoNewPrivileges, p.OOMScoreAdj)
	}
	wantR := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: config.Unlimited}, {Type: "RLIMIT_CORE"}}
	if !reflect.DeepEqual(p.Rlimits, wantR) {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
	if got := nsString(s); got != "network=,ipc=,uts=/proc/1/ns/uts,user=,mount=,cgroup=" {
		t.Errorf("namespaces = %s", got)
	}
	wantM := []string{
		"/dev->/dev=bind:rw,rbind,rshared",
		"/dev/mqueue=mqueue:",
		"/dev/pts=devpts:nosuid,noexec,newinstance,ptmxmode=0666,mode=0620",
		"/dev/shm=tmpfs:nosuid",
		"/etc/ssl->/etc/ssl=bind:ro,rbind",
		"/proc=proc:nosuid,nodev,noexec,relatime",
		"/run=tmpfs:size=1m,mode=755",
		"/sys=sysfs:nosuid,noexec,nodev,ro",
		"/sys/fs/cgroup=cgroup:nosuid,noexec,nodev,relatime,ro",
		"/tmp=tmpfs:",
		"/var/log->/var/log=bind:rw,rbind,rshared",
	}
	if got := mountStrings(s); !reflect.DeepEqual(got, wantM) {
		t.Errorf("mounts =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantM, "\n"))
	}
	l := s.Linux
	if !s.Root.Readonly || s.Hostname != "box" || l.CgroupsPath != "/keel/svc" || l.RootfsPropagation != "shared" ||
		!reflect.DeepEqual(l.MaskedPaths, []string{"/proc/kcore"}) || !reflect.DeepEqual(l.ReadonlyPaths, []string{"/proc/sys"}) ||
		l.Sysctl["net.ipv4.ip_forward"] != "1" || s.Annotations["a"] != "b" ||
		len(l.UIDMappings) != 1 || l.UIDMappings[0].HostID != 1000 || len(l.GIDMappings) != 1 {
		t.Errorf("spec = %+v\nlinux = %+v", s, l)
	}
	if r := l.Resources; *r.Memory.Limit != 1048576 || r.Pids.Limit == nil || *r.Pids.Limit != 10 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0" {
		t.Errorf("resources = %+v", r)
	}
	if len(l.Devices) != 1 || l.Devices[0].Path != "/dev/console" || *l.Devices[0].FileMode != 0o666 || l.Devices[0].Major != 5 {
		t.Errorf("devices = %+v", l.Devices)
	}
	if d := l.Resources.Devices; len(d) != 2 || !d[0].Allow || *d[0].Major != 5 || d[1].Type != "b" || d[1].Major != nil {
		t.Errorf("device cgroup = %+v", d)
	}
	wantRT := &bundle.Runtime{
		Cgroups: []string{"svc"}, Mkdir: []string{"/var/lib/svc"},
		Interfaces: []bundle.Interface{{Name: "eth1"}, {Add: "veth", Peer: "veth-svc"}},
		BindNS:     bundle.Namespaces{Net: "/run/netns/svc"}, Namespace: "other",
		Restart: bundle.RestartAlways, StopGracePeriod: "3s",
	}
	if !reflect.DeepEqual(rt, wantRT) {
		t.Errorf("runtime =\n%+v\nwant\n%+v", rt, wantRT)
	}
}

func TestRuntimeSpecAllCapabilities(t *testing.T) {
	s, err := RuntimeSpec(bundle.Onboot, config.Image{Name: "p", ImageConfig: config.ImageConfig{Command: []string{"x"}, Capabilities: []string{"all"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_SYS_ADMIN") || !slices.Contains(caps, "CAP_BPF") || len(caps) < 40 {
		t.Errorf("all = %q", caps)
	}
}

// The org.mobyproject.config label gives defaults; the YAML replaces them
// field by field, and capabilities.add and binds.add add to them.
func TestRuntimeSpecLabel(t *testing.T) {
	label := `{"capabilities": ["CAP_SYS_ADMIN"], "binds": ["/etc:/host-etc"], "net": "new",
		"readonly": true, "command": ["/label-cmd"], "runtime": {"mkdir": ["/var/a"], "bindNS": {"net": "/run/netns/a"}}}`
	img := imageConfig(v1.Config{Cmd: []string{"/image-cmd"}, Labels: map[string]string{config.LabelKey: label}})
	for _, tc := range []struct {
		name, yml string
		check     func(t *testing.T, s *specs.Spec, rt *bundle.Runtime)
	}{
		{"label only", "name: a\nimage: x", func(t *testing.T, s *specs.Spec, rt *bundle.Runtime) {
			if !reflect.DeepEqual(s.Process.Capabilities.Effective, []string{"CAP_SYS_ADMIN"}) || !s.Root.Readonly ||
				s.Process.Args[0] != "/label-cmd" || !strings.HasPrefix(nsString(s), "network=") ||
				!reflect.DeepEqual(rt.Mkdir, []string{"/var/a"}) || rt.BindNS.Net != "/run/netns/a" {
				t.Errorf("spec %+v runtime %+v", s.Process, rt)
			}
			if !slices.Contains(mountStrings(s), "/etc->/host-etc=bind:rw,rbind,rshared") {
				t.Errorf("mounts %q", mountStrings(s))
			}
		}},
		{"add forms", "name: a\nimage: x\ncapabilities.add: [CAP_NET_ADMIN]\nbinds.add: [/var:/var]", func(t *testing.T, s *specs.Spec, rt *bundle.Runtime) {
			if !reflect.DeepEqual(s.Process.Capabilities.Effective, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) {
				t.Errorf("caps %q", s.Process.Capabilities.Effective)
			}
			m := mountStrings(s)
			if !slices.Contains(m, "/etc->/host-etc=bind:rw,rbind,rshared") || !slices.Contains(m, "/var->/var=bind:rw,rbind,rshared") {
				t.Errorf("mounts %q", m)
			}
		}},
		{"yaml replaces", "name: a\nimage: x\ncapabilities: [CAP_CHOWN]\ncapabilities.add: [CAP_NET_ADMIN]\nbinds: []\nnet: host\nreadonly: false\ncommand: [/yaml]\nruntime: {mkdir: [/var/b]}",
			func(t *testing.T, s *specs.Spec, rt *bundle.Runtime) {
				if !reflect.DeepEqual(s.Process.Capabilities.Effective, []string{"CAP_CHOWN"}) || s.Root.Readonly ||
					s.Process.Args[0] != "/yaml" || strings.HasPrefix(nsString(s), "network=") ||
					!reflect.DeepEqual(rt.Mkdir, []string{"/var/b"}) || rt.BindNS.Net != "/run/netns/a" {
					t.Errorf("spec %+v runtime %+v ns %s", s.Process, rt, nsString(s))
				}
				for _, m := range mountStrings(s) {
					if strings.Contains(m, "bind") {
						t.Errorf("binds: [] kept %s", m)
					}
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ids := parseEntry(t, "onboot", tc.yml)
			s, rt, err := Specs(bundle.Onboot, e, img, ids)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s, rt)
		})
	}
	bad := imageConfig(v1.Config{Cmd: []string{"x"}, Labels: map[string]string{config.LabelKey: `{"capabilities": "all", "name": "x"}`}})
	_, _, err := Specs(bundle.Onboot, config.Image{Name: "a", Image: "x"}, bad, nil)
	want := "spec for a: x label org.mobyproject.config:1:18: label.capabilities: expected a list, got a string\nx label org.mobyproject.config:1:25: label: unknown key \"name\" (see docs/yaml.md for the keys)"
	if err == nil || err.Error() != want {
		t.Errorf("bad label: %v\nwant %s", err, want)
	}
}

// With no label, the .add forms are the whole list.
func TestRuntimeSpecAddWithoutLabel(t *testing.T) {
	e, ids := parseEntry(t, "onboot", "name: a\nimage: x\ncapabilities.add: [CAP_NET_ADMIN]\nbinds.add: [/var:/var]")
	s, _, err := Specs(bundle.Onboot, e, imageConfig(v1.Config{Cmd: []string{"x"}}), ids)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Process.Capabilities.Effective, []string{"CAP_NET_ADMIN"}) || !slices.Contains(mountStrings(s), "/var->/var=bind:rw,rbind,rshared") {
		t.Errorf("caps %q mounts %q", s.Process.Capabilities.Effective, mountStrings(s))
	}
}

func TestRuntimeSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  config.Image
		cfg  v1.Config
		want string
	}{
		{"no command", config.Image{Name: "a"}, v1.Config{}, "spec for a: no command: the image has no entrypoint or cmd and the YAML gives none"},
		{"unknown user", config.Image{Name: "a"}, v1.Config{Cmd: []string{"x"}, User: "nobody"}, `spec for a: resolve image user "nobody": unable to find user nobody: no matching entries in passwd file`},
		{"empty command", config.Image{Name: "a", ImageConfig: config.ImageConfig{Command: []string{}}}, v1.Config{Cmd: []string{"x"}}, "spec for a: no command: the image has no entrypoint or cmd and the YAML gives none"},
		{"hostname without uts", config.Image{Name: "a", ImageConfig: config.ImageConfig{Hostname: "h"}}, v1.Config{Cmd: []string{"x"}}, "spec for a: hostname \"h\" needs its own uts namespace: add `uts: new`"},
		{"unknown uid name", config.Image{Name: "a", ImageConfig: config.ImageConfig{UID: &config.ID{Name: "ghost"}}}, v1.Config{Cmd: []string{"x"}}, "spec for a: uid: unknown id \"ghost\": give a number, \"root\" or the name of a container"},
		{"volume bind", config.Image{Name: "a", ImageConfig: config.ImageConfig{Binds: []string{"vola:/v"}}}, v1.Config{Cmd: []string{"x"}}, "spec for a: bind \"vola:/v\": volumes are not built by keel yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RuntimeSpec(bundle.Onboot, tc.img, imageConfig(tc.cfg))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestRuntimeSpecNamedUser(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nnginx:x:101:\nwww:x:33:nginx\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	img, err := mutate.AppendLayers(imageConfig(v1.Config{Cmd: []string{"nginx"}, User: "nginx"}),
		static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	s, err := RuntimeSpec(bundle.Service, config.Image{Name: "web"}, img)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 101 || u.GID != 101 || !reflect.DeepEqual(u.AdditionalGids, []uint32{33}) {
		t.Errorf("user = %+v, want 101:101 with group 33", u)
	}
}

// The YAML `timeout` of an onboot or onshutdown entry reaches
// runtime.json as written; an entry without one has none (no limit).
func TestRuntimeSpecTimeout(t *testing.T) {
	ic := imageConfig(v1.Config{Cmd: []string{"true"}})
	for _, tc := range []struct {
		list string
		kind bundle.Kind
		yml  string
		want string
	}{
		{"onboot", bundle.Onboot, "name: fmt\nimage: x\ntimeout: 45s\n", "45s"},
		{"onshutdown", bundle.Onshutdown, "name: save\nimage: x\ntimeout: 1m30s\n", "1m30s"},
		{"onboot", bundle.Onboot, "name: fmt\nimage: x\n", ""},
	} {
		img, ids := parseEntry(t, tc.list, tc.yml)
		_, rt, err := Specs(tc.kind, img, ic, ids)
		if err != nil {
			t.Fatal(err)
		}
		if rt.Timeout != tc.want {
			t.Errorf("%s %q: runtime.json timeout = %q, want %q", tc.list, tc.yml, rt.Timeout, tc.want)
		}
	}
}

// A relative destination, from the YAML or a label, lands in config.json
// where runc would mount it: from the container's root. It replaces an
// absolute mount at the same place, as two spellings of one path do.
func TestRuntimeSpecRelativeDestinations(t *testing.T) {
	label := `{"binds": ["/etc:label-etc"]}`
	img := imageConfig(v1.Config{Cmd: []string{"x"}, Labels: map[string]string{config.LabelKey: label}})
	e, ids := parseEntry(t, "onboot", `
name: a
image: x
binds.add: ["/var:../var2:ro"]
tmpfs: ["scratch:size=1m", /dev/shm]
mounts:
  - {type: overlay, source: overlay, destination: writeable-host-etc, options: [lowerdir=/etc]}
  - {type: tmpfs, destination: dev/shm, options: [size=2m]}`)
	s, _, err := Specs(bundle.Onboot, e, img, ids)
	if err != nil {
		t.Fatal(err)
	}
	got := mountStrings(s)
	for _, want := range []string{
		"/etc->/label-etc=bind:rw,rbind,rshared",
		"/var->/var2=bind:ro,rbind",
		"/scratch=tmpfs:size=1m",
		"/writeable-host-etc=overlay:lowerdir=/etc",
		"/dev/shm=tmpfs:size=2m",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s in %q", want, got)
		}
	}
	for _, m := range s.Mounts {
		if !strings.HasPrefix(m.Destination, "/") {
			t.Errorf("relative destination %q in config.json", m.Destination)
		}
	}
	if n := strings.Count(strings.Join(got, " "), "/dev/shm="); n != 1 {
		t.Errorf("%d mounts at /dev/shm, want 1: %q", n, got)
	}
}
