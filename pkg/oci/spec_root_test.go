package oci

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/oci/bundle"
)

// TestRuntimeSpecRunsUnderRunc runs generated bundles with the real runc:
// the proof that config.json is something a runtime accepts, not just
// something that looks right. It needs root, a runc in PATH (or $KEEL_RUNC)
// and a static busybox at /bin/busybox.
func TestRuntimeSpecRunsUnderRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root test: runs containers with runc")
	}
	runc := os.Getenv("KEEL_RUNC")
	if runc == "" {
		var err error
		if runc, err = exec.LookPath("runc"); err != nil {
			t.Skip("no runc in PATH (set KEEL_RUNC)")
		}
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox (busybox-static)")
	}
	for _, tc := range []struct {
		name  string
		entry config.Image
		want  []string
	}{
		{"defaults", config.Image{Name: "defaults", Command: []string{"/bin/sh", "-c",
			"echo pid=$$; grep CapEff /proc/self/status; ls /dev; touch /proc/sys/x 2>&1 || echo ro-ok"}},
			[]string{"pid=1", "CapEff:\t00000000a80425fb", "pts", "shm", "mqueue", "ro-ok"}},
		{"host namespaces and binds", config.Image{
			Name: "host", Net: "host", Pid: "host", Capabilities: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"},
			Binds:   []string{"/etc:/host-etc:ro"},
			Command: []string{"/bin/sh", "-c", "test $$ -ne 1 && echo host-pid; ls /host-etc/hostname; touch /host-etc/x 2>&1 || echo bind-ro"}},
			[]string{"host-pid", "/host-etc/hostname", "bind-ro"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := filepath.Join(dir, bundle.RootfsDir)
			for _, d := range []string{"bin", "proc", "sys", "dev", "host-etc"} {
				if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), busybox, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, applet := range []string{"sh", "ls", "cat", "wc", "grep", "touch", "test", "echo"} {
				os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
			}
			s, err := RuntimeSpec(bundle.Onboot, tc.entry, imageConfig(v1.Config{Env: []string{"PATH=/bin"}}))
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.MarshalConfig(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			id := "keel-spec-test-" + tc.entry.Name
			cmd := exec.Command(runc, "--root", filepath.Join(dir, "state"), "run", "--bundle", dir, id)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("runc run: %v\n%s\n%s", err, out.String(), b)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
