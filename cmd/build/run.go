package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keel-os/keel/pkg/qemu"
)

// listFlag collects a flag that may repeat.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runCommand is `keel run NAME`: boot NAME-kernel, NAME-initrd.img and
// NAME-cmdline under QEMU with the serial console on this terminal. It
// returns when the guest is gone: nil for a clean power-off or halt.
func runCommand(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: keel run [flags] NAME\n\nBoots NAME-kernel, NAME-initrd.img and NAME-cmdline (as written by keel build) under QEMU,\nor, when NAME is a file, that disk image: an ISO as a CD-ROM, raw, qcow2, VHD or VMDK as the boot disk,\nunder UEFI or BIOS as the image says.\nThe serial console is this terminal: ctrl-a x quits, ctrl-a c is QEMU's monitor.\n\nflags:")
		fs.PrintDefaults()
	}
	var m qemu.Machine
	var disks, publish listFlag
	accel := fs.String("accel", "auto", "accelerator: auto (KVM only where it truly works), kvm or tcg")
	fs.IntVar(&m.Memory, "mem", 1024, "guest memory in MiB (must hold the unpacked initrd)")
	fs.IntVar(&m.CPUs, "cpus", 2, "guest vCPUs")
	fs.Var(&disks, "disk", "raw disk image to attach as a virtio disk (repeatable)")
	fs.Var(&publish, "publish", "forward a host TCP port to the guest, HOST:GUEST (repeatable)")
	fs.BoolVar(&m.NoNetwork, "no-network", false, "boot with no network card")
	fs.BoolVar(&m.NoReboot, "no-reboot", false, "exit when the guest reboots instead of restarting it")
	fs.StringVar(&m.QMP, "qmp", "", "serve QEMU's QMP on this unix socket path")
	cmdline := fs.String("cmdline", "", "kernel command line (default: the contents of NAME-cmdline)")
	extra := fs.String("append", "", "words to append to the kernel command line, e.g. keel.oneshot")
	uefi := fs.Bool("uefi", false, "boot under UEFI (OVMF, with a private copy of its variable store); disk images pick their firmware themselves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("run: want exactly one NAME")
	}
	name := fs.Arg(0)
	how, err := m.Target(name, *uefi)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	fmt.Fprintf(os.Stderr, "keel: run %s: %s\n", name, how)
	if m.UEFI {
		dir, err := os.MkdirTemp("", "keel-run-")
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		defer os.RemoveAll(dir)
		if err := m.PrivateVars(dir); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	m.Disks, m.Publish = disks, publish
	if m.Initrd == "" && (*cmdline != "" || *extra != "") {
		return fmt.Errorf("run: %s carries its own kernel command line; -cmdline and -append are for kernel+initrd outputs", name)
	}
	if *cmdline != "" {
		m.Cmdline = *cmdline
	}
	if *extra != "" {
		m.Cmdline = strings.TrimSpace(m.Cmdline + " " + *extra)
	}

	ctx := context.Background()
	switch *accel {
	case "auto":
		var why string
		m.Accel, why = qemu.Detect(ctx, m.Kernel)
		fmt.Fprintf(os.Stderr, "keel: run %s accel=%s (%s)\n", name, m.Accel, why)
	case qemu.KVM, qemu.TCG:
		m.Accel = *accel
	default:
		return fmt.Errorf("run: -accel %q: want auto, kvm or tcg", *accel)
	}

	cmd, err := m.Command(ctx)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	// The console goes to our stdout through a watcher, so that a guest that
	// halts or panics (where QEMU would sit forever) ends the run too.
	watch := qemu.NewWatcher()
	cmd.Stdin = os.Stdin
	cmd.Stdout = multiWriter{os.Stdout, watch}
	cmd.Stderr = os.Stderr
	// QEMU must not outlive keel run, however keel run ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// On a terminal QEMU puts the tty in raw mode and ctrl-c reaches the
	// guest as a key; from a script, the interrupt reaches QEMU itself,
	// which stops. Either way keel run waits for QEMU and does not die first.
	signal.Ignore(syscall.SIGINT)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run: start qemu: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case sig := <-stop:
		cmd.Process.Signal(sig)
		<-exited
		return fmt.Errorf("run: stopped by %v", sig)
	case err = <-exited:
	case ending := <-watch.Stuck:
		// Give the console a moment to print the rest of a panic.
		time.Sleep(500 * time.Millisecond)
		cmd.Process.Kill()
		<-exited
		if f := watch.Failure(); f != "" {
			return fmt.Errorf("run: the guest's boot failed: %s", f)
		}
		if ending == qemu.Panicked {
			return errors.New("run: the guest kernel panicked")
		}
		return nil
	}
	if f := watch.Failure(); f != "" {
		return fmt.Errorf("run: the guest's boot failed: %s", f)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("run: qemu exited with status %d", exit.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("run: qemu: %w", err)
	}
	if e := watch.Ending(); e == qemu.Panicked {
		return errors.New("run: the guest kernel panicked")
	}
	return nil
}

// multiWriter writes to every writer and never fails because the watcher
// did: the console must keep flowing.
type multiWriter []io.Writer

func (w multiWriter) Write(p []byte) (int, error) {
	for _, x := range w {
		x.Write(p)
	}
	return len(p), nil
}
