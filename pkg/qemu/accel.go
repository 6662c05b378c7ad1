package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Accelerator names as QEMU spells them.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// probeTimeout bounds the probe boot. A kernel with working KVM reaches its
// "no root" panic in well under a second; one that crawls (a PVM host) never
// does in this time, and that is the whole point of the probe.
const probeTimeout = 8 * time.Second

// Detect chooses the accelerator: KVM only where it truly works, TCG
// otherwise. It never hangs: the cheap checks come first, and the probe boot
// is killed when its time is up. kernel is a bzImage to probe with; when it
// is empty the probe is skipped and the cheap checks decide.
func Detect(ctx context.Context, kernel string) (accel, why string) {
	if ok, why := kvmPlausible(); !ok {
		return TCG, why
	}
	if kernel == "" {
		return KVM, "kvm device usable (probe skipped)"
	}
	if err := probeKVM(ctx, kernel); err != nil {
		return TCG, "kvm probe boot failed: " + err.Error()
	}
	return KVM, "kvm probe boot succeeded"
}

// kvmPlausible runs the checks that cost nothing: the CPU advertises
// hardware virtualisation, the host is not a PVM hypervisor (where /dev/kvm
// exists but ordinary kernels crawl), and /dev/kvm opens.
func kvmPlausible() (bool, string) {
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false, "cannot read /proc/cpuinfo"
	}
	if !hasVirtFlag(cpuinfo) {
		return false, "cpu has no vmx/svm flag"
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return false, "host is a PVM hypervisor (kvm_pvm loaded)"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, "cannot open /dev/kvm: " + err.Error()
	}
	f.Close()
	return true, ""
}

func hasVirtFlag(cpuinfo []byte) bool {
	for _, line := range bytes.Split(cpuinfo, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("flags")) {
			continue
		}
		for _, f := range strings.Fields(string(line)) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// probeKVM boots kernel with no root under KVM. The kernel panics for want
// of a root filesystem, panic=-1 reboots at once and -no-reboot makes QEMU
// exit: a clean exit in time means KVM runs real kernels at speed.
func probeKVM(ctx context.Context, kernel string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary,
		"-accel", "kvm", "-cpu", "host", "-M", "q35", "-nodefaults", "-m", "256",
		"-display", "none", "-no-reboot", "-serial", "null",
		"-kernel", kernel, "-append", "panic=-1 console=ttyS0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("no panic within %s", probeTimeout)
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
