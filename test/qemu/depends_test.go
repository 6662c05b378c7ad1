package qemu_test

import (
	"encoding/json"
	"testing"
	"time"
)

// db is healthy only after a few seconds; app waits for it. flaky turns
// unhealthy after its first check and is restarted. lost never becomes
// healthy, so waiter waits for ever, saying why, while the rest runs.
const dependsYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
services:
  - name: app
    image: {{.Busybox}}
    depends_on: [db]
    command: ["/bin/sh", "-c", "trap 'echo app got TERM; exit 0' TERM; echo app up; while true; do sleep 1; done"]
  - name: db
    image: {{.Busybox}}
    tmpfs: ["/tmp"]
    command: ["/bin/sh", "-c", "trap 'echo db got TERM; exit 0' TERM; sleep 4; touch /tmp/ready; echo db ready; while true; do sleep 1; done"]
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready"]
      interval: 1s
      timeout: 5s
      start_period: 60s   # its failures while it starts do not count
  - name: flaky
    image: {{.Busybox}}
    restart: always
    tmpfs: ["/tmp"]
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; echo run; while true; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "/bin/sh", "-c", "test -e /tmp/once && exit 1; touch /tmp/once"]
      interval: 1s
      retries: 2
  - name: lost
    image: {{.Busybox}}
    restart: never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    healthcheck:
      test: ["TCP", "127.0.0.1:9"]
      interval: 1s
      retries: 1
  - name: waiter
    image: {{.Busybox}}
    depends_on:
      lost: {condition: service_healthy}
    command: ["/bin/sh", "-c", "echo waiter should never run"]
`

// Dependencies, health checks and service control, from the console.
func TestServiceDependencies(t *testing.T) {
	requireBoot(t)
	prefix := buildImage(t, "depends", dependsYAML)
	vm := boot(t, prefix, nil)
	const wait = 3 * time.Minute

	c := vm.Expect(0, `keel: console shell started`, wait)
	// Both, in either order on the console: db's health change wakes app
	// before it is logged. Their order is boot.json's, checked below.
	i := max(vm.Expect(c, `keel: service db healthy`, wait), vm.Expect(c, `keel: service app running`, wait))

	// The boot report says app's first run came after db was healthy.
	i = vm.run(i, "tr -d '\\n' < /run/keel/boot.json; echo", `^\{.*"service app": \d+.*\}$`)
	var phases map[string]int
	if err := json.Unmarshal([]byte(vm.Lines()[i]), &phases); err != nil {
		t.Fatalf("boot.json: %v", err)
	}
	dbHealthy, ok1 := phases["service db healthy"]
	appRuns, ok2 := phases["service app"]
	if !ok1 || !ok2 || appRuns < dbHealthy {
		t.Errorf("boot report: db healthy at %d ms (%v), app first running at %d ms (%v): app must come after", dbHealthy, ok1, appRuns, ok2)
	}

	// flaky turns unhealthy and is restarted.
	vm.Expect(c, `keel: WARN service flaky unhealthy, restarting`, wait)
	i = vm.Expect(i, `keel: service flaky running`, wait)

	// waiter waits for lost, and says so; the rest runs.
	i = vm.run(i, "keel status waiter | grep -i 'waiting for'", `lost \(healthy; it is unhealthy\)`)
	i = vm.run(i, "keel status | grep '^waiter '", `^waiter\s+waiting`)
	i = vm.run(i, "keel status | grep '^app '", `^app\s+running`)
	i = vm.run(i, "ctr -n services.linuxkit task ls | grep -c '^waiter '", `^0$`)

	// stop, start and restart from the console, ctr agreeing.
	i = vm.run(i, "keel stop app >/dev/null; echo tasks=$(ctr -n services.linuxkit task ls | grep -c '^app ')", `^tasks=0$`)
	i = vm.run(i, "sleep 2; keel status | grep '^app '", `^app\s+stopped`) // its policy does not bring it back
	i = vm.run(i, "keel start app >/dev/null; for k in $(seq 60); do ctr -n services.linuxkit task ls | grep -q '^app .*RUNNING' && break; sleep 1; done; ctr -n services.linuxkit task ls | grep '^app '", `^app\s+\d+\s+RUNNING`)
	// The new run's "running" line can come before keel status answers,
	// so it is looked for from where the restart was typed, after the
	// restart's own stop and start request.
	n := len(vm.Lines())
	i = vm.run(i, "keel restart app >/dev/null; keel status | grep '^app '", `^app\s+(running|starting)`)
	r := vm.Expect(n, `keel: service app stopped`, wait)
	r = vm.Expect(r, `keel: service app start asked for`, wait)
	i = max(i, vm.Expect(r, `keel: service app running`, wait))

	// Shutdown stops app before db.
	i = vm.run(i, "poweroff", `keel: shutdown power-off`)
	a := vm.Expect(i, `keel: service app stopped`, wait)
	d := vm.Expect(i, `keel: service db stopped`, wait)
	if a > d {
		t.Errorf("db was stopped (line %d) before app (line %d), which depends on it", d, a)
	}
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu: %v", err)
	}
}
