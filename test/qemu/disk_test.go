package qemu_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/qemu"
	"github.com/keel-os/keel/pkg/testenv"
)

// The LinuxKit way to give services a disk: an onboot container mounts it
// on the host's /var with shared propagation, and a service binds a
// directory of it. The writer service writes a payload, syncs it and
// records its checksum; then a file is written from the console without
// any sync, just before the power button is pressed. At shutdown an
// onshutdown bundle writes to the disk, before the services are stopped.
const diskYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
onboot:
  - name: mount-data
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "mkdir -p /var/lib/data && mount -t ext4 /dev/vda /var/lib/data && echo data mounted"]
    capabilities: [all]
    binds: [/dev:/dev, "/var:/var:rshared,rbind"]
    rootfsPropagation: shared
    devices:
      - path: all
        type: b
services:
  - name: writer
    image: {{.Busybox}}
    binds: [/var/lib/data:/data]
    command:
      - /bin/sh
      - -c
      - |
        head -c 3000000 /dev/urandom > /data/payload.tmp
        sync /data/payload.tmp
        mv /data/payload.tmp /data/payload
        sha256sum /data/payload | cut -d' ' -f1 > /data/payload.sha256
        sync
        touch /data/done
        sync
        echo payload written
        trap 'echo writer got TERM; exit 0' TERM
        while true; do sleep 1; done
onshutdown:
  - name: farewell
    image: {{.Busybox}}
    binds: [/var/lib/data:/data]
    command: ["/bin/sh", "-c", "echo onshutdown was here > /data/farewell; echo farewell written"]
`

// QMP system_powerdown powers off cleanly: the onshutdown bundle runs
// first, then the service gets SIGTERM (it exits 0 on it). Data a service
// wrote and synced on a virtio disk, data written with no sync at all, and
// the onshutdown bundle's, are intact after the power-off: the
// host's e2fsck finds the filesystem clean (so keel unmounted it, which a
// mere sync does not do), and the files read back from the host hold
// what the guest wrote.
func TestDiskDataSurvivesPowerOff(t *testing.T) {
	requireBoot(t)
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"} {
		testenv.Tool(t, tool, "e2fsprogs")
	}
	disk := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "data", disk).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}

	prefix := buildImage(t, "disk", diskYAML)
	vm := boot(t, prefix, func(m *qemu.Machine) { m.Disks = []qemu.Disk{{Path: disk}} })
	const wait = 3 * time.Minute
	i := vm.Expect(0, `\] 000-mount-data: data mounted$`, wait)
	vm.Expect(i, `keel: console shell started`, wait)
	i = vm.Expect(i, `keel: service writer running`, wait)
	i = vm.run(i, "while [ ! -e /var/lib/data/done ]; do sleep 0.2; done; echo guest-sha=$(cat /var/lib/data/payload.sha256)", `^guest-sha=[0-9a-f]{64}$`)
	guestSum := strings.TrimPrefix(vm.Lines()[i], "guest-sha=")
	// No sync: keel's shutdown must flush it.
	i = vm.run(i, "echo written-late > /var/lib/data/late; echo late''-done", `^late-done$`)

	if _, err := qemu.QMP(vm.QMPPath, "system_powerdown", nil); err != nil {
		t.Fatal(err)
	}
	i = vm.Expect(i, `keel: power button pressed`, wait)
	i = vm.Expect(i, `keel: shutdown power-off$`, wait)
	i = vm.Expect(i, `\] 000-farewell: farewell written$`, wait)
	i = vm.Expect(i, `keel: onshutdown 000-farewell exit=0 `, wait)
	i = vm.Expect(i, `keel: service writer stopped exit=0$`, wait)
	i = vm.Expect(i, `keel: shutdown: power-off now`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after power-off: %v", err)
	}
	for _, l := range vm.Lines() {
		if strings.Contains(l, "/var/lib/data") && strings.Contains(l, "busy") {
			t.Errorf("data disk not unmounted cleanly: %s", l)
		}
	}

	// A filesystem still mounted when the machine went down keeps the
	// needs_recovery flag, however well it was synced.
	if out, err := exec.Command("dumpe2fs", "-h", disk).CombinedOutput(); err != nil {
		t.Errorf("dumpe2fs -h: %v\n%s", err, out)
	} else if strings.Contains(string(out), "needs_recovery") {
		t.Errorf("the data disk was not unmounted: its journal needs recovery")
	}
	// -f: check even though the filesystem says it is clean; -n: change
	// nothing. Exit 0 means no errors.
	if out, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	payload := dumpFile(t, disk, "/payload")
	hostSum := sha256.Sum256(payload)
	if len(payload) != 3000000 {
		t.Errorf("payload is %d bytes on the disk, want 3000000", len(payload))
	}
	if got := hex.EncodeToString(hostSum[:]); got != guestSum {
		t.Errorf("payload sha256 on the disk %s, the guest wrote %s", got, guestSum)
	}
	if got := strings.TrimSpace(string(dumpFile(t, disk, "/payload.sha256"))); got != guestSum {
		t.Errorf("payload.sha256 on the disk is %q, want %q", got, guestSum)
	}
	if got := string(dumpFile(t, disk, "/late")); got != "written-late\n" {
		t.Errorf("the file written without sync reads %q on the disk", got)
	}
	if got := string(dumpFile(t, disk, "/farewell")); got != "onshutdown was here\n" {
		t.Errorf("the onshutdown bundle's file reads %q on the disk", got)
	}
}

// dumpFile reads path out of the ext4 image with debugfs, without
// mounting it.
func dumpFile(t *testing.T, disk, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump")
	cmd := exec.Command("debugfs", "-R", "dump "+path+" "+out, disk)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debugfs dump %s: %v\n%s", path, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("debugfs dump %s: %v", path, err)
	}
	return b
}
