// Package qemu boots a keel image (kernel, initrd, cmdline) under QEMU. It is
// shared by `keel run` and the boot tests in test/qemu.
package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
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

	// Disks are attached as virtio block devices, in order.
	Disks []Disk
	// Publish forwards host ports to the guest, each as ParsePublish
	// reads it: "8080:80", "127.0.0.1:8053:53/udp".
	Publish []string
	// NoNetwork leaves the guest without a network card.
	NoNetwork bool

	// QMP, when set, is the path of a QMP unix socket to serve.
	QMP string
	// NoReboot makes a guest reboot end QEMU instead of restarting the guest.
	NoReboot bool

	// Detached runs QEMU in the background (-daemonize): it returns once
	// the VM runs, its pid in PIDFile and the serial console written to
	// ConsoleFile, as there is no terminal to show it on. Both are needed.
	Detached    bool
	ConsoleFile string
	PIDFile     string

	// Boot media other than -kernel (see media.go): with Kernel empty,
	// the firmware boots CDROM or BootDisk.
	Media
}

// Args is the QEMU command line for m. The serial console is on stdio,
// or in ConsoleFile for a detached VM. This is the one place the command
// line is put together, for keel run and the boot tests alike.
func (m *Machine) Args() ([]string, error) {
	mem, cpus := m.Memory, m.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	serial := "mon:stdio"
	if m.Detached {
		if m.ConsoleFile == "" || m.PIDFile == "" {
			return nil, fmt.Errorf("a detached VM needs a console file and a pid file")
		}
		serial = "file:" + m.ConsoleFile
	}
	a := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-M", "q35", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		// mon:stdio puts the serial console on the terminal, with QEMU's
		// monitor behind ctrl-a c and quit behind ctrl-a x.
		"-serial", serial,
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
			f, err := ParsePublish(p)
			if err != nil {
				return nil, err
			}
			netdev += "," + f.hostfwd()
		}
		a = append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	} else if len(m.Publish) > 0 {
		return nil, fmt.Errorf("ports are published to a guest with no network")
	}
	for _, d := range m.Disks {
		if d.Path == "" {
			return nil, fmt.Errorf("a disk has no file")
		}
		a = append(a, "-drive", d.drive())
	}
	if m.QMP != "" {
		a = append(a, "-qmp", "unix:"+m.QMP+",server=on,wait=off")
	}
	if m.NoReboot {
		a = append(a, "-no-reboot")
	}
	if m.Detached {
		a = append(a, "-daemonize", "-pidfile", m.PIDFile)
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
	for i, d := range m.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return nil, fmt.Errorf("disk %d: %w", i, err)
		}
	}
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install qemu-system-x86): %w", Binary, err)
	}
	return exec.CommandContext(ctx, Binary, args...), nil
}
