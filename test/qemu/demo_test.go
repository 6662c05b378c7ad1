package qemu_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/qemu"
)

// The demo is a small real system: an onboot configures eth0 by DHCP and a
// web service under containerd answers on port 80, which keel run forwards
// from the host. The test fetches the page from the host, then presses the
// power button and expects a clean power-off.
func TestDemo(t *testing.T) {
	requireBoot(t)
	prefix := buildExample(t, filepath.Join(repoRoot, "examples/demo.yml"))
	port := freePort(t)
	vm := boot(t, prefix, func(m *qemu.Machine) {
		m.Publish = []string{strconv.Itoa(port) + ":80"}
	})

	const wait = 3 * time.Minute
	i := vm.Expect(0, `\] 000-dhcp: eth0: 10\.0\.2\.15/24 via 10\.0\.2\.2`, wait)
	i = vm.Expect(i, `keel: onboot 000-dhcp exit=0 `, wait)
	i = vm.Expect(i, `keel: service web running `, wait)

	// The boot report: when each onboot finished, when containerd was
	// ready, when each service was running, in ms since /init started.
	// The web service's health check (TCP on port 80) passes too.
	vm.Expect(0, `keel: console shell started`, wait)
	vm.Expect(i, `keel: service web healthy`, wait)
	i = vm.run(i, "tr -d '\\n' < /run/keel/boot.json; echo", `^\{.*"service web healthy": \d+.*\}$`)
	t.Logf("demo boot report: %s", vm.Lines()[i])
	var phases map[string]int
	if err := json.Unmarshal([]byte(vm.Lines()[i]), &phases); err != nil {
		t.Errorf("boot.json: %v", err)
	}
	for _, p := range []string{"init", "mounts", "modules", "system", "onboot 000-dhcp", "onboot 001-hello", "onboot done", "console", "containerd", "service web", "services", "service web healthy"} {
		if _, ok := phases[p]; !ok {
			t.Errorf("boot.json lacks %q", p)
		}
	}

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	body := fetch(t, url, 90*time.Second)
	if !strings.Contains(body, "Hello from keel") {
		t.Fatalf("GET %s: unexpected page:\n%s", url, body)
	}

	if _, err := qemu.QMP(vm.QMPPath, "system_powerdown", nil); err != nil {
		t.Fatal(err)
	}
	i = vm.Expect(i, `keel: shutdown power-off`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after the power button: %v", err)
	}
	// A clean boot and power-off log no error and no warning: whatever
	// PID 1 only logs when it goes wrong is caught here.
	for _, l := range vm.Lines() {
		if strings.Contains(l, "keel: ERROR ") || strings.Contains(l, "keel: WARN ") {
			t.Errorf("the demo logged: %s", l)
		}
	}
}

// buildExample builds a YAML from examples/ as a user would, from the local
// cache where `make images` put the base images.
func buildExample(t *testing.T, yml string) string {
	t.Helper()
	out := t.TempDir()
	b, err := exec.Command(keelBin, "build", "-dir", out, yml).CombinedOutput()
	t.Logf("keel build %s:\n%s", yml, b)
	if err != nil {
		t.Fatalf("keel build: %v", err)
	}
	return filepath.Join(out, strings.TrimSuffix(filepath.Base(yml), ".yml"))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fetch GETs url until it answers 200. QEMU's port forward accepts before
// the guest listens, so early attempts fail; the deadline only guards
// against a hang.
func fetch(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return string(b)
			}
			err = fmt.Errorf("status %s, body error %v", resp.Status, rerr)
		}
		last = err
		time.Sleep(time.Second)
	}
	t.Fatalf("GET %s: no answer: %v", url, last)
	return ""
}
