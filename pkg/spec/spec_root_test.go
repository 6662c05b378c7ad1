package spec

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/testenv"
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
			testenv.Missing(t, "no runc in PATH (set KEEL_RUNC; make test-go sets it to the runc `make images` builds)")
		}
	}
	busybox, err := os.ReadFile(testenv.File(t, "/bin/busybox", "/bin/busybox (Debian package busybox-static)"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yml string
		want      []string
	}{
		{"defaults", `
name: defaults
image: x
command: [/bin/sh, -c, "echo pid=$$; grep CapEff /proc/self/status; ls /dev; id; pwd; touch /x && echo rw-ok"]`,
			[]string{"pid=1", "CapEff:\t0000000000000000", "pts", "uid=0 gid=0", "rw-ok"}},
		{"host namespaces and binds", `
name: host
image: x
pid: host
capabilities: [CAP_SYS_ADMIN, CAP_NET_ADMIN]
binds: ["/etc:/host-etc:ro"]
command: [/bin/sh, -c, "test $$ -ne 1 && echo host-pid; ls /host-etc/hostname; touch /host-etc/x 2>&1 || echo bind-ro"]`,
			[]string{"host-pid", "/host-etc/hostname", "bind-ro"}},
		{"every field", `
name: every
image: x
readonly: true
uts: new
net: new
ipc: new
hostname: keelbox
cwd: /work
uid: 1234
gid: 4321
additionalGids: [99]
env: [GREETING=hi]
capabilities.add: [CAP_CHOWN]
noNewPrivileges: true
oomScoreAdj: 100
tmpfs: ["/tmp:size=1m,mode=1777", /work]
sysctl: {kernel.shm_rmid_forced: "1"}
rlimits: ["nofile,123,456"]
maskedPaths: [/proc/kcore]
readonlyPaths: [/proc/sys]
resources: {pids: {limit: 50}}
command: [/bin/sh, -c, "hostname; pwd; id; echo $GREETING; ulimit -n; cat /proc/sys/kernel/shm_rmid_forced; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status; touch /x 2>&1 || echo root-ro; touch /tmp/y && echo tmp-rw; mount | grep ' /tmp ' | grep -o size=1024k"]`,
			[]string{"keelbox", "/work", "uid=1234 gid=4321 groups=99", "hi", "123", "1\n100", "NoNewPrivs:\t1", "root-ro", "tmp-rw", "size=1024k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := filepath.Join(dir, bundle.RootfsDir)
			for _, d := range []string{"bin", "proc", "sys", "dev", "host-etc", "tmp", "work"} {
				if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), busybox, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, applet := range []string{"sh", "ls", "cat", "wc", "grep", "touch", "test", "echo", "id", "pwd", "hostname", "mount"} {
				os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
			}
			entry, ids := parseEntry(t, "onboot", tc.yml)
			s, _, err := Specs(bundle.Onboot, entry, imageConfig(v1.Config{Env: []string{"PATH=/bin"}}), ids)
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
			id := "keel-spec-test-" + entry.Name
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
