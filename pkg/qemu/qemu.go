// Package qemu boots a keel image (kernel, initrd, cmdline) under QEMU. It is
// shared by `keel run` and the boot tests in test/qemu.
package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Binary is the QEMU system emulator keel uses.
const Binary = "qemu-system-x86_64"

// Machine describes one VM.
type Machine struct {
	Kernel  string
	Initrd  string
	Cmdline string

	// Accel is "kvm" or "tcg"; empty means Detect.
	Accel  string
	Memory int // MiB; 0 means 1024
	CPUs   int // 0 means 2

	// Disks are raw disk images attached as virtio block devices.
	Disks []string
	// Publish forwards host TCP ports to the guest: "8080:80".
	Publish []string
	// NoNetwork leaves the guest without a network card.
	NoNetwork bool

	// QMP, when set, is the path of a QMP unix socket to serve.
	QMP string
	// NoReboot makes a guest reboot end QEMU instead of restarting the guest.
	NoReboot bool

	// Boot media other than -kernel (see media.go): with Kernel empty,
	// the firmware boots CDROM or BootDisk.
	Media
}

// Args is the QEMU command line for m. The serial console is on stdio.
func (m *Machine) Args() ([]string, error) {
	mem, cpus := m.Memory, m.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	a := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-M", "q35", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		// mon:stdio puts the serial console on the terminal, with QEMU's
		// monitor behind ctrl-a c and quit behind ctrl-a x.
		"-serial", "mon:stdio",
		"-device", "virtio-rng-pci",
	}
	if m.Kernel != "" {
		a = append(a, "-kernel", m.Kernel)
	}
	if m.Initrd != "" {
		a = append(a, "-initrd", m.Initrd)
	}
	if m.Cmdline != "" {
		a = append(a, "-append", m.Cmdline)
	}
	media, err := m.Media.args()
	if err != nil {
		return nil, err
	}
	a = append(a, media...)
	switch m.Accel {
	case KVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	case TCG, "":
		// Multi-threaded TCG uses every host core the guest has vCPUs for.
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	default:
		return nil, fmt.Errorf("unknown accelerator %q (want kvm or tcg)", m.Accel)
	}
	if !m.NoNetwork {
		netdev := "user,id=net0"
		for _, p := range m.Publish {
			host, guest, ok := strings.Cut(p, ":")
			if _, err := strconv.ParseUint(host, 10, 16); !ok || err != nil {
				return nil, fmt.Errorf("publish %q: want HOSTPORT:GUESTPORT", p)
			}
			if _, err := strconv.ParseUint(guest, 10, 16); err != nil {
				return nil, fmt.Errorf("publish %q: want HOSTPORT:GUESTPORT", p)
			}
			netdev += fmt.Sprintf(",hostfwd=tcp::%s-:%s", host, guest)
		}
		a = append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	for i, d := range m.Disks {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("disk %d: %w", i, err)
		}
		a = append(a, "-drive", fmt.Sprintf("file=%s,if=virtio,format=raw,cache=writeback", d))
	}
	if m.QMP != "" {
		a = append(a, "-qmp", "unix:"+m.QMP+",server=on,wait=off")
	}
	if m.NoReboot {
		a = append(a, "-no-reboot")
	}
	return a, nil
}

// Command returns the QEMU process for m, choosing the accelerator first if
// m.Accel is empty. Standard streams are left for the caller to connect.
func (m *Machine) Command(ctx context.Context) (*exec.Cmd, error) {
	if m.Accel == "" {
		m.Accel, _ = Detect(ctx, m.Kernel)
	}
	args, err := m.Args()
	if err != nil {
		return nil, err
	}
	for _, f := range []string{m.Kernel, m.Initrd} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("boot files: %w", err)
			}
		}
	}
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install qemu-system-x86): %w", Binary, err)
	}
	return exec.CommandContext(ctx, Binary, args...), nil
}
