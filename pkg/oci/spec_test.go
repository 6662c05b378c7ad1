package oci

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

	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/oci/bundle"
)

// imageConfig is an image with no layers and the given config.
func imageConfig(c v1.Config) v1.Image {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Config: c})
	if err != nil {
		panic(err)
	}
	return img
}

func TestRuntimeSpecDefaults(t *testing.T) {
	ic := imageConfig(v1.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo hi"},
		Env:        []string{"PATH=/bin", "A=1"},
		WorkingDir: "/work",
		User:       "1000:50",
	})
	s, err := RuntimeSpec(bundle.Onboot, config.Image{Name: "x", Image: "busybox"}, ic)
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
	if !reflect.DeepEqual(p.Capabilities.Bounding, DefaultCapabilities) ||
		!reflect.DeepEqual(p.Capabilities.Effective, DefaultCapabilities) ||
		!reflect.DeepEqual(p.Capabilities.Permitted, DefaultCapabilities) {
		t.Errorf("capabilities = %+v", p.Capabilities)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0].Type != "RLIMIT_NOFILE" {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
	if s.Root.Path != "rootfs" || s.Root.Readonly {
		t.Errorf("root = %+v", s.Root)
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type))
	}
	if got := strings.Join(ns, ","); got != "pid,network,ipc,uts,mount" {
		t.Errorf("namespaces = %s", got)
	}
	var mnts []string
	for _, m := range s.Mounts {
		mnts = append(mnts, m.Destination+"="+m.Type+":"+strings.Join(m.Options, ","))
	}
	want := []string{
		"/proc=proc:nosuid,noexec,nodev",
		"/dev=tmpfs:nosuid,strictatime,mode=755,size=65536k",
		"/dev/pts=devpts:nosuid,noexec,newinstance,ptmxmode=0666,mode=0620",
		"/dev/shm=tmpfs:nosuid,noexec,nodev,mode=1777",
		"/dev/mqueue=mqueue:nosuid,noexec,nodev",
		"/sys=sysfs:nosuid,noexec,nodev,ro",
		"/sys/fs/cgroup=cgroup:nosuid,noexec,nodev,relatime,ro",
	}
	if !reflect.DeepEqual(mnts, want) {
		t.Errorf("mounts =\n%s\nwant\n%s", strings.Join(mnts, "\n"), strings.Join(want, "\n"))
	}
	if s.Linux.CgroupsPath != "/onboot/x" {
		t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	// The JSON must round-trip into the spec type and hold no empty strings
	// where runc expects a value.
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

func TestRuntimeSpecFromYAML(t *testing.T) {
	ic := imageConfig(v1.Config{Cmd: []string{"sleep", "1"}, Env: []string{"A=1", "B=2"}})
	img := config.Image{
		Name:         "svc",
		Command:      []string{"/bin/true"},
		Env:          []string{"B=3", "C=4"},
		Binds:        []string{"/var/log:/var/log", "/etc/ssl:/etc/ssl:ro", "/dev:/dev"},
		Capabilities: []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"},
		Net:          "host",
		Pid:          "/proc/1/ns/pid",
	}
	s, err := RuntimeSpec(bundle.Service, img, ic)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Process.Args, []string{"/bin/true"}) {
		t.Errorf("args = %q", s.Process.Args)
	}
	if want := []string{"A=1", "B=3", "C=4", DefaultPath}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env = %q, want %q", s.Process.Env, want)
	}
	if want := []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}; !reflect.DeepEqual(s.Process.Capabilities.Bounding, want) {
		t.Errorf("caps = %q", s.Process.Capabilities.Bounding)
	}
	if s.Process.Cwd != "/" {
		t.Errorf("cwd = %q", s.Process.Cwd)
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type)+"="+n.Path)
	}
	if got := strings.Join(ns, ","); got != "pid=/proc/1/ns/pid,ipc=,uts=,mount=" {
		t.Errorf("namespaces = %s", got)
	}
	byDst := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		byDst[m.Destination] = m
	}
	if m := byDst["/var/log"]; m.Type != "bind" || m.Source != "/var/log" || strings.Join(m.Options, ",") != "rbind,rw" {
		t.Errorf("/var/log mount = %+v", m)
	}
	if m := byDst["/etc/ssl"]; strings.Join(m.Options, ",") != "rbind,ro" {
		t.Errorf("/etc/ssl mount = %+v", m)
	}
	if m := byDst["/dev"]; m.Type != "bind" {
		t.Errorf("/dev bind did not replace the tmpfs: %+v", m)
	}
	if len(s.Mounts) != 9 {
		t.Errorf("%d mounts, want 9", len(s.Mounts))
	}
	if s.Linux.CgroupsPath != "/services/svc" {
		t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
}

func TestRuntimeSpecAllCapabilities(t *testing.T) {
	s, err := RuntimeSpec(bundle.Onboot, config.Image{Name: "p", Command: []string{"x"}, Capabilities: []string{"all"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_SYS_ADMIN") || !slices.Contains(caps, "CAP_BPF") || len(caps) < 40 {
		t.Errorf("all = %q", caps)
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
		{"empty command", config.Image{Name: "a", Command: []string{}}, v1.Config{Cmd: []string{"x"}}, "spec for a: no command: the image has no entrypoint or cmd and the YAML gives none"},
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
