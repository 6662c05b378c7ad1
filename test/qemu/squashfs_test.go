package qemu_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/qemu"
)

// TestDemoSquashfs builds the demo as kernel+squashfs and as
// kernel+initrd in one build, boots the squashfs one to its web service
// (PID 1 finds the disk by its partition name and boots on from the
// squashfs under a tmpfs overlay), powers it off with the power button,
// and boots the kernel+initrd one too, to log the guest memory each uses
// once ready (MemTotal - MemAvailable).
func TestDemoSquashfs(t *testing.T) {
	requireBoot(t)
	out := t.TempDir()
	yml := filepath.Join(repoRoot, "examples/demo.yml")
	start := time.Now()
	b, err := exec.Command(keelBin, "build", "-dir", out, "-format", "kernel+initrd,kernel+squashfs", yml).CombinedOutput()
	t.Logf("keel build (%s):\n%s", time.Since(start).Round(time.Millisecond), b)
	if err != nil {
		t.Fatalf("keel build: %v", err)
	}
	prefix := filepath.Join(out, "demo")
	for _, f := range []string{"-initrd.img", "-squashfs-initrd.img", "-squashfs.img"} {
		if st, err := os.Stat(prefix + f); err == nil {
			t.Logf("demo%s: %d bytes", f, st.Size())
		}
	}

	used, shmem := map[string]int{}, map[string]int{}
	for _, kind := range []string{"kernel+squashfs", "kernel+initrd"} {
		port := freePort(t)
		booted := time.Now()
		vm := boot(t, prefix, func(m *qemu.Machine) {
			m.Publish = []string{strconv.Itoa(port) + ":80"}
			if kind == "kernel+squashfs" {
				m.Initrd, m.Disks = prefix+"-squashfs-initrd.img", []qemu.Disk{{Path: prefix + "-squashfs.img", Format: qemu.Raw}}
				// make demo's image, in the memory issue 9 asks it to fit:
				// the kernel+initrd demo cannot (its compressed and
				// unpacked initrd and the kernel's own reservations need
				// more before anything runs).
				m.Memory = 160
			}
		})
		const wait = 3 * time.Minute
		i := 0
		if kind == "kernel+squashfs" {
			i = vm.Expect(0, `keel: root on squashfs device=/dev/vda1 partition=keel-[0-9a-f]{24} `, wait)
		}
		i = vm.Expect(i, `keel: service web running `, wait)
		i = vm.Expect(i, `keel: service web healthy`, wait)
		ready := time.Since(booted)
		vm.Expect(0, `keel: console shell started`, wait)
		body := fetch(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/", 90*time.Second)
		if !strings.Contains(body, "Hello from keel") {
			t.Fatalf("%s: unexpected page:\n%s", kind, body)
		}
		i = vm.run(i, "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | tr -s ' \\n' '  '; echo", `^MemTotal: \d+ kB MemAvailable: \d+ kB\s*$`)
		m := regexp.MustCompile(`\d+`).FindAllString(vm.Lines()[i], 2)
		total, _ := strconv.Atoi(m[0])
		avail, _ := strconv.Atoi(m[1])
		used[kind] = (total - avail) / 1024
		t.Logf("%s: services healthy %s after QEMU start; guest memory used once ready %d MiB (MemTotal %d kB, MemAvailable %d kB)",
			kind, ready.Round(100*time.Millisecond), used[kind], total, avail)
		i = vm.run(i, "grep -E '^(MemFree|Cached|Shmem|AnonPages|Mapped|SUnreclaim):' /proc/meminfo | tr -s ' \\n' '  '; echo", `^MemFree: .*SUnreclaim: \d+ kB\s*$`)
		t.Logf("%s: %s", kind, vm.Lines()[i])
		sh := regexp.MustCompile(`Shmem: (\d+) kB`).FindStringSubmatch(vm.Lines()[i])
		shmem[kind], _ = strconv.Atoi(sh[1])
		if _, err := qemu.QMP(vm.QMPPath, "system_powerdown", nil); err != nil {
			t.Fatal(err)
		}
		i = vm.Expect(i, `keel: shutdown power-off`, wait)
		vm.Expect(i, `reboot: Power down`, wait)
		if err := vm.Wait(wait); err != nil {
			t.Fatalf("%s: qemu did not exit cleanly after the power button: %v", kind, err)
		}
		for _, l := range vm.Lines() {
			if strings.Contains(l, "keel: ERROR ") {
				t.Errorf("%s logged: %s", kind, l)
			}
		}
	}
	// The small initrd without its disk: the small init says why the boot
	// cannot go on, in the words keel run looks for, and halts; nothing of
	// the system runs.
	vm := boot(t, prefix, func(m *qemu.Machine) { m.Initrd = prefix + "-squashfs-initrd.img" })
	i := vm.Expect(0, `keel: squashfs root: waiting for the disk partition=keel-[0-9a-f]{24} `, 3*time.Minute)
	i = vm.Expect(i, `keel: ERROR boot failed: squashfs root: partition "keel-[0-9a-f]{24}" after 30s: `, 3*time.Minute)
	t.Logf("kernel+squashfs without its disk: %s", vm.Lines()[i])
	vm.Expect(i, `reboot: System halted`, time.Minute)
	for _, l := range vm.Lines() {
		if strings.Contains(l, "init started") || strings.Contains(l, "Kernel panic") {
			t.Errorf("without its disk: %s", l)
		}
	}

	t.Logf("guest memory used once ready: kernel+squashfs %d MiB, kernel+initrd %d MiB; in tmpfs (Shmem, never reclaimed): %d kB and %d kB",
		used["kernel+squashfs"], used["kernel+initrd"], shmem["kernel+squashfs"], shmem["kernel+initrd"])
	// MemAvailable counts only part of the page cache as available, so
	// the difference in "used" is smaller than the system's size; Shmem
	// is what the initramfs holds for good, and what kernel+squashfs
	// leaves on the disk.
	if shmem["kernel+squashfs"]*4 > shmem["kernel+initrd"] {
		t.Errorf("kernel+squashfs holds %d kB in tmpfs, kernel+initrd %d kB: the system is not kept on the disk", shmem["kernel+squashfs"], shmem["kernel+initrd"])
	}
}
