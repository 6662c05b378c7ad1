package spec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The config.json and runtime.json of a few LinuxKit-style entries, byte
// for byte: any change to what keel generates shows up as a diff here.
func TestSpecGoldens(t *testing.T) {
	const yml = `
kernel: {image: k}
init: [i]
onboot:
  - name: sysctl
    image: linuxkit/sysctl:v1
    onFailure: halt
  - name: dhcpcd
    image: linuxkit/dhcpcd:v1
    command: ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
services:
  - name: getty
    image: linuxkit/getty:v1
    env: [INSECURE=true]
    restart: always
    stopGracePeriod: 2s
  - name: nginx
    image: nginx:alpine
    net: new
    uts: new
    hostname: web
    readonly: true
    tmpfs: [/var/cache/nginx, "/run:mode=755"]
    uid: nginx
    gid: nginx
    capabilities: [CAP_NET_BIND_SERVICE, CAP_CHOWN, CAP_SETUID, CAP_SETGID, CAP_DAC_OVERRIDE]
    rlimits: ["nofile,4096,8192"]
    sysctl: {net.ipv4.ip_unprivileged_port_start: "0"}
    resources: {memory: {limit: 268435456}, pids: {limit: 100}}
    runtime:
      interfaces: [{add: veth, peer: veth-web}]
      bindNS: {net: /run/netns/web}
`
	labels := map[string]string{
		// LinuxKit's packages carry labels like these.
		"sysctl": `{"net": "host", "pid": "host", "ipc": "host", "capabilities": ["CAP_SYS_ADMIN"], "readonly": true, "binds": ["/etc/sysctl.d:/etc/sysctl.d"]}`,
		"dhcpcd": `{"net": "host", "capabilities": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_ADMIN"], "binds": ["/var/run:/run"], "tmpfs": ["/var/lib/dhcpcd"], "runtime": {"mkdir": ["/var/run"]}}`,
		"getty":  `{"pid": "host", "net": "host", "capabilities": ["all"], "binds": ["/etc/getty.shadow:/etc/shadow", "/dev:/dev", "/etc/resolv.conf:/etc/resolv.conf"], "devices": [{"path": "/dev/console", "type": "c", "major": 5, "minor": 1, "mode": "0666"}, {"path": "all", "type": "c"}]}`,
	}
	cfg, err := config.Parse("golden.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ids := cfg.IDs()
	for _, l := range []struct {
		kind    bundle.Kind
		entries []config.Image
	}{{bundle.Onboot, cfg.Onboot}, {bundle.Service, cfg.Services}} {
		for _, e := range l.entries {
			t.Run(e.Name, func(t *testing.T) {
				ic := imageConfig(v1.Config{
					Cmd:    []string{"/bin/" + e.Name},
					Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
					Labels: map[string]string{config.LabelKey: labels[e.Name]},
				})
				s, rt, err := Specs(l.kind, e, ic, ids)
				if err != nil {
					t.Fatal(err)
				}
				c, err := bundle.MarshalConfig(s)
				if err != nil {
					t.Fatal(err)
				}
				r, err := bundle.MarshalRuntime(rt)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "spec", e.Name+".config.json"), c)
				golden(t, filepath.Join("testdata", "spec", e.Name+".runtime.json"), r)
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}
