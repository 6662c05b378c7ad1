package qemu_test

import (
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/qemu"
)

// Three onboot containers run in YAML order with their output and exit codes
// on the console; the second fails and boot goes on; a last one asks for a
// power-off with busybox poweroff from the host pid namespace, and QEMU ends
// cleanly.
const onbootYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
onboot:
  - name: first
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "echo first says hello; echo first on stderr >&2"]
  - name: second
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "echo second is about to fail; exit 3"]
  - name: third
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "echo third ran after a failure"]
  - name: poweroff
    image: {{.Busybox}}
    command: ["/sbin/poweroff"]
    pid: host
    capabilities: [all]
services:
  - name: never-started
    image: {{.Busybox}}
    command: ["/bin/sleep", "1000"]
`

func TestOnbootOrderAndPowerOff(t *testing.T) {
	requireBoot(t)
	prefix := buildImage(t, "onboot", onbootYAML)
	// One CPU: containerd waits for onboot rather than slow it down.
	vm := boot(t, prefix, func(m *qemu.Machine) { m.CPUs = 1 })

	const wait = 3 * time.Minute
	start := vm.Expect(0, `keel: init started`, wait)
	vm.Expect(start, `keel: containerd waits for onboot reason="one CPU"`, wait)
	// stdout and stderr are separate pipes: their lines may reach the
	// console in either order, so each is looked for from the start.
	i := vm.Expect(start, `\] 000-first: first says hello$`, wait)
	vm.Expect(start, `\] 000-first: first on stderr$`, wait)
	i = vm.Expect(i, `keel: onboot 000-first exit=0 `, wait)
	i = vm.Expect(i, `\] 001-second: second is about to fail$`, wait)
	i = vm.Expect(i, `keel: WARN onboot 001-second exit=3 `, wait)
	i = vm.Expect(i, `\] 002-third: third ran after a failure$`, wait)
	i = vm.Expect(i, `keel: onboot 002-third exit=0 `, wait)
	i = vm.Expect(i, `keel: shutdown power-off`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after power-off: %v", err)
	}
	vm.none(t, vm.Lines(), `keel: .*containerd ready`, "containerd started before onboot was done, on one CPU")
}
