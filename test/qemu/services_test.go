package qemu_test

import (
	"regexp"
	"testing"
	"time"
)

const servicesYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
services:
  - name: ticker
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "trap 'echo ticker got TERM; exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
  - name: crasher
    image: {{.Busybox}}
    restart: always
    command: ["/bin/sh", "-c", "echo crashing; exit 1"]
`

// Services under containerd, driven from the console as a person would:
// ctr sees them, their logs are there, a killed service comes back, a
// crash-looping one backs off and shows as such, and power-off stops them
// with SIGTERM.
func TestServices(t *testing.T) {
	requireBoot(t)
	prefix := buildImage(t, "services", servicesYAML)
	vm := boot(t, prefix, nil)

	const wait = 3 * time.Minute
	// The console shell starts right after onboot, before containerd.
	c := vm.Expect(0, `keel: console shell started`, wait)
	i := vm.Expect(c, `keel: containerd ready`, wait)
	i = vm.Expect(i, `keel: services started count=2`, wait)
	t.Logf("%s", vm.Lines()[i])

	i = vm.run(i, "ctr -n services.linuxkit task ls | grep ticker", `^ticker\s+\d+\s+RUNNING`)
	i = vm.run(i, "sleep 2; keel logs ticker -n 1", `^tick \d+$`)

	// A killed service comes back.
	i = vm.run(i, `kill -9 $(keel status | awk '$1=="ticker"{print $3}')`, `keel: WARN service ticker exited, restarting exit=signal:SIGKILL`)
	i = vm.Expect(i, `keel: service ticker running`, wait)

	// The crash loop backs off and shows as such.
	i = vm.Expect(i, `keel: WARN service crasher crash-looping restarts=\d+`, wait)
	i = vm.run(i, "keel status | grep crasher", `^crasher\s+crashloop`)
	t.Logf("%s", vm.Lines()[i])
	i = vm.run(i, "keel status | grep ticker", `^ticker\s+\S+`)
	if l := vm.Lines()[i]; !regexp.MustCompile(`^ticker\s+(running|starting)\s.*\s1\s.*137/SIGKILL`).MatchString(l) {
		t.Errorf("ticker's status: %q", l)
	}

	i = vm.run(i, "poweroff", `keel: shutdown power-off`)
	i = vm.Expect(i, `keel: service ticker stopped exit=0`, wait)
	i = vm.Expect(i, `keel: containerd stopped`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after power-off: %v", err)
	}
}
