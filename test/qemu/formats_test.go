package qemu_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/keel-os/keel/pkg/disk"
	"github.com/keel-os/keel/pkg/qemu"
)

// formatsYAML is a small system: one service under containerd, which the
// tests wait for before pressing the power button.
const formatsYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0"
init:
  - {{.Init}}
services:
  - name: ticker
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`

// buildFormats builds formatsYAML in the given formats, with every image,
// keel/boot included, pulled from the test registry into an empty cache.
// It returns the output directory and the build's wall time.
func buildFormats(t *testing.T, formats ...string) (string, time.Duration) {
	t.Helper()
	data := map[string]string{"Registry": registryHost}
	for k, ref := range baseImages() {
		data[k] = registryHost + "/" + ref
	}
	var buf bytes.Buffer
	if err := template.Must(template.New("f").Parse(formatsYAML)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yml := filepath.Join(dir, "sys.yml")
	if err := os.WriteFile(yml, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	args := []string{"build", "-dir", out, "-boot-image", data["Boot"]}
	for _, f := range formats {
		args = append(args, "-format", f)
	}
	cmd := exec.Command(keelBin, append(args, yml)...)
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+filepath.Join(dir, "cache"))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Logf("keel build -format %s (%s):\n%s", strings.Join(formats, ","), took.Round(100*time.Millisecond), b)
	if err != nil {
		t.Fatalf("keel build: %v", err)
	}
	return out, took
}

// bootFile boots a disk image the way keel run picks it, waits for the
// service, presses the power button and expects a clean power-off.
func bootFile(t *testing.T, file string, wantHow string) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	var how string
	start := time.Now()
	vm := boot(t, "", func(m *qemu.Machine) {
		m.Kernel, m.Initrd, m.Cmdline = "", "", ""
		if how, err = m.Target(file, false); err != nil {
			t.Fatal(err)
		}
		if m.UEFI {
			if err := m.PrivateVars(t.TempDir()); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !strings.Contains(how, wantHow) {
		t.Errorf("keel run would boot %s as %q, want %q", filepath.Base(file), how, wantHow)
	}
	const wait = 6 * time.Minute
	i := vm.Expect(0, `keel: service ticker running`, wait)
	running := time.Since(start)
	if _, err := qemu.QMP(vm.QMPPath, "system_powerdown", nil); err != nil {
		t.Fatal(err)
	}
	i = vm.Expect(i, `keel: shutdown power-off`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after the power button: %v", err)
	}
	t.Logf("%s (%.1f MB, %s): QEMU start -> service running %s", filepath.Base(file), float64(st.Size())/1e6, how, running.Round(100*time.Millisecond))
}

func TestBootRawEFI(t *testing.T) {
	requireBoot(t)
	out, _ := buildFormats(t, "raw-efi")
	bootFile(t, disk.File(out, "sys", disk.RawEFI), "raw GPT disk as the boot disk under UEFI")
}
