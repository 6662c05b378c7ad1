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
onboot:
  # containerd comes up while onboot runs: this waits for its socket,
  # seen through the daemon's own root (a keel that started containerd only
  # after onboot would fail it). It binds nothing of containerd's, which
  # would make containerd wait for onboot.
  - name: wait-containerd
    image: {{.Busybox}}
    pid: host
    capabilities: [all]
    command: ["/bin/sh", "-c", "i=0; until p=$(pidof containerd) && [ -S /proc/$p/root/run/containerd/containerd.sock ]; do i=$((i+1)); if [ $i -gt 120 ]; then echo no containerd during onboot; exit 1; fi; sleep 1; done; echo containerd is up during onboot; echo containerd cpu.idle=$(cat /proc/$p/root/sys/fs/cgroup/podruntime/containerd/cpu.idle)"]
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
	// containerd starts with onboot; the console shell right after onboot,
	// and the services once both are done.
	vm.Expect(0, `keel: containerd ready`, wait)
	i := vm.Expect(0, `\] 000-wait-containerd: containerd is up during onboot$`, wait)
	// Until onboot is done, containerd yields the CPU to it.
	vm.Expect(0, `\] 000-wait-containerd: containerd cpu.idle=1$`, wait)
	i = vm.Expect(i, `keel: onboot 000-wait-containerd exit=0 `, wait)
	i = vm.Expect(i, `keel: console shell started`, wait)
	i = vm.Expect(i, `keel: services started count=2`, wait)
	t.Logf("%s", vm.Lines()[i])

	// Then no more; it and its shim stay in their cgroup.
	i = vm.run(i, "cat /sys/fs/cgroup/podruntime/containerd/cpu.idle", `^0$`)
	i = vm.run(i, "cat /proc/$(pidof containerd)/cgroup", `^0::/podruntime/containerd$`)
	i = vm.run(i, "ctr -n services.linuxkit task ls | grep ticker", `^ticker\s+\d+\s+RUNNING`)
	// The shim runs crun for them (keel/init has no runc): its state is
	// crun's, and an exec through ctr works (its stdin from /dev/null: ctr
	// forwards the console's, which would take the next command typed).
	i = vm.run(i, "crun --root /run/containerd/runc/services.linuxkit list | grep ticker", `^ticker\s+\d+\s+running\s`)
	i = vm.run(i, "ctr -n services.linuxkit task exec --exec-id probe ticker /bin/sh -c 'echo exec in $(hostname)' </dev/null", `^exec in \S+$`)
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
