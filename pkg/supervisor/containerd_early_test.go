package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Which onboot bundles make containerd wait for onboot: those reaching a
// path containerd uses, by a bind (source above, at or below it), a host
// mount or mkdir from runtime.json; not those binding elsewhere, nor other
// mount types.
func TestOnbootPreparesContainerd(t *testing.T) {
	paths := (&Containerd{}).paths()
	cases := []struct {
		name    string
		mounts  []specs.Mount
		runtime *bundle.Runtime
		want    string // a word of the reason; "" is no wait
	}{
		{name: "echo", mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}},
		{name: "bind-elsewhere", mounts: []specs.Mount{{Destination: "/etc/x", Type: "bind", Source: "/etc/x", Options: []string{"rbind"}}}},
		{name: "tmpfs-on-var", mounts: []specs.Mount{{Destination: "/var", Type: "tmpfs", Source: "tmpfs"}}},
		{name: "relative-source", mounts: []specs.Mount{{Destination: "/x", Type: "bind", Source: "var"}}},
		{name: "bind-var", mounts: []specs.Mount{{Destination: "/var", Type: "bind", Source: "/var", Options: []string{"rbind", "rshared"}}}, want: "binds /var"},
		{name: "bind-run-option", mounts: []specs.Mount{{Destination: "/run", Source: "/run", Options: []string{"bind"}}}, want: "binds /run"},
		{name: "bind-below", mounts: []specs.Mount{{Destination: "/x", Type: "bind", Source: "/var/lib/containerd/io.containerd.content.v1.content"}}, want: "containerd uses /var/lib/containerd"},
		{name: "bind-root", mounts: []specs.Mount{{Destination: "/host", Type: "bind", Source: "/"}}, want: "binds /"},
		{name: "host-mount", runtime: &bundle.Runtime{Mounts: []specs.Mount{{Destination: "/var/lib", Type: "ext4", Source: "/dev/sda1"}}}, want: "mounts on /var/lib"},
		{name: "host-mkdir", runtime: &bundle.Runtime{Mkdir: []string{"/var/log"}}, want: "makes /var/log"},
		{name: "host-mkdir-elsewhere", runtime: &bundle.Runtime{Mkdir: []string{"/var/lib/other"}}},
	}
	root := t.TempDir()
	for i, c := range cases {
		b := bundle.Bundle{Kind: bundle.Onboot, Name: c.name, Path: filepath.Join(root, c.name)}
		if err := os.MkdirAll(b.Path, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg, err := bundle.MarshalConfig(&specs.Spec{Mounts: c.mounts})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b.ConfigPath(), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if c.runtime != nil {
			rt, err := bundle.MarshalRuntime(c.runtime)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(b.RuntimePath(), rt, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		name, why := onbootPreparesContainerd([]bundle.Bundle{b}, paths)
		if c.want == "" {
			if name != "" {
				t.Errorf("%d %s: containerd waits (%s); want it not to", i, c.name, why)
			}
			continue
		}
		if name != c.name || !strings.Contains(why, c.want) {
			t.Errorf("%d %s: got %q %q; want this bundle, with %q", i, c.name, name, why, c.want)
		}
	}

	// The first bundle that reaches one is named; an unreadable one counts.
	broken := bundle.Bundle{Kind: bundle.Onboot, Name: "broken", Path: filepath.Join(root, "broken")}
	all := []bundle.Bundle{{Name: "echo", Path: filepath.Join(root, "echo")}, broken}
	if name, why := onbootPreparesContainerd(all, paths); name != "broken" || !strings.Contains(why, "unreadable") {
		t.Errorf("with an unreadable bundle: %q %q", name, why)
	}
}
