package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keel-os/keel/pkg/qemu"
)

// runOptions are keel run's flags.
type runOptions struct {
	accel, cmdline, extra string
	memory                memoryFlag
	cpus                  int
	disks, publish        []string
	noNetwork, noReboot   bool
	// state is the directory of the QMP socket, console log, pid file and
	// disks with no file= of their own; "" is NAME-state.
	state string
	// qmp overrides the QMP socket's path.
	qmp                    string
	detached, stop, dryRun bool
	stopGrace              time.Duration
	// uefi boots OVMF instead of SeaBIOS (disk images pick their own).
	uefi bool
}

// memoryFlag is --mem: MiB, or a size with a unit (qemu.ParseMemory).
type memoryFlag int

func (m *memoryFlag) String() string { return fmt.Sprint(int(*m)) }
func (m *memoryFlag) Type() string   { return "size" }

func (m *memoryFlag) Set(s string) error {
	n, err := qemu.ParseMemory(s)
	*m = memoryFlag(n)
	return err
}

func newRunCmd() *cobra.Command {
	o := runOptions{memory: 1024}
	cmd := &cobra.Command{
		Use:   "run [qemu] [flags] NAME",
		Short: "boot a built image under QEMU",
		Long: `Boots a build's outputs under QEMU. NAME is what keel build wrote, without the suffixes
(out/demo for out/demo-kernel, out/demo-initrd.img and out/demo-cmdline), or any of those
files, or a tar-kernel-initrd output (out/demo-initrd.tar). "keel run qemu NAME" is the
same, as linuxkit users type it. A disk image file (an ISO as a CD-ROM; raw, qcow2, VHD
or VMDK as the boot disk, under UEFI or BIOS as the image says), a UKI or a NAME-vmlinux
boots as what it is; keel run says which file it boots and how.

The serial console is this terminal (ctrl-a x quits, ctrl-a c is QEMU's monitor) and is
logged to STATE/console.log. STATE (--state, default NAME-state) also holds the QMP
socket, and the disks given no file. With --detached the VM runs in the background;
keel run --stop NAME (or --state STATE) powers it off, as does system_powerdown on its
QMP socket.`,
		Example: `  keel run out/demo
  keel run qemu --mem 2G --cpus 4 out/demo-initrd.tar
  keel run --disk size=1G,format=qcow2 --publish 8080:80 out/demo
  keel run --detached out/demo && keel run --stop out/demo
  keel run --dry-run out/demo        # print the QEMU command line`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "qemu" {
				args = args[1:]
			}
			if o.stop {
				if len(args) == 0 && o.state == "" {
					return usageErrorf(c, "--stop: want NAME or --state DIR")
				}
				return wantArgs(0, 1, "NAME")(c, args)
			}
			return wantArgs(1, 1, "one NAME")(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "qemu" {
				args = args[1:]
			}
			if o.stop {
				return stopVM(c, args, o)
			}
			return runVM(c, args[0], o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.accel, "accel", "auto", "accelerator: auto (KVM only where it truly works), kvm or tcg")
	fs.Var(&o.memory, "mem", "guest memory: MiB, or a size such as 2G or 512M (must hold the unpacked initrd)")
	fs.IntVar(&o.cpus, "cpus", 2, "guest vCPUs")
	fs.StringArrayVar(&o.disks, "disk", nil, "attach a virtio disk: `SPEC` is file=PATH,size=1G,format=qcow2|raw (created when absent; with no file, one in STATE), or just PATH (repeatable)")
	fs.StringArrayVar(&o.publish, "publish", nil, "forward a host port to the guest: `SPEC` is [HOSTIP:]HOST:GUEST[/tcp|/udp] (repeatable)")
	fs.BoolVar(&o.noNetwork, "no-network", false, "boot with no network card")
	fs.BoolVar(&o.noReboot, "no-reboot", false, "exit when the guest reboots instead of restarting it")
	fs.StringVar(&o.state, "state", "", "`DIR` for the QMP socket, console log, pid file and disks (default NAME-state)")
	fs.StringVar(&o.qmp, "qmp", "", "serve QEMU's QMP on this unix socket `PATH` (default STATE/qmp.sock)")
	fs.StringVar(&o.cmdline, "cmdline", "", "kernel command line (default: the build's cmdline)")
	fs.StringVar(&o.extra, "append", "", "words to append to the kernel command line, e.g. keel.oneshot")
	fs.BoolVarP(&o.detached, "detached", "d", false, "run the VM in the background, its console in STATE/console.log")
	fs.BoolVar(&o.stop, "stop", false, "power off the VM of NAME (or --state DIR) started with --detached, and wait for it")
	fs.DurationVar(&o.stopGrace, "stop-timeout", time.Minute, "with --stop: how long the guest has to power off before QEMU is told to quit")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the QEMU command line and stop: boot nothing, create nothing")
	fs.BoolVar(&o.uefi, "uefi", false, "boot under UEFI (OVMF, with a private copy of its variable store in STATE); disk images pick their firmware themselves")
	completeFlag(cmd, "accel", "auto", qemu.KVM, qemu.TCG)
	return cmd
}

// statePaths are the files keel run keeps in the state directory.
func statePaths(state string) (qmp, console, pid string) {
	return filepath.Join(state, "qmp.sock"), filepath.Join(state, "console.log"), filepath.Join(state, "qemu.pid")
}

// runVM is `keel run NAME`. In the foreground it returns when the guest is
// gone: nil for a clean power-off or halt.
func runVM(c *cobra.Command, arg string, o runOptions) error {
	image := isBootImage(arg)
	var target bootTarget
	if image {
		target = bootTarget{name: strings.TrimSuffix(arg, filepath.Ext(arg))}
	} else {
		var err error
		if target, err = findTarget(arg); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	state := o.state
	if state == "" {
		state = target.name + "-state"
	}
	qmpPath, consoleLog, pidFile := statePaths(state)
	if o.qmp != "" {
		qmpPath = o.qmp
	}
	m := qemu.Machine{
		Memory: int(o.memory), CPUs: o.cpus, Publish: o.publish, NoNetwork: o.noNetwork, NoReboot: o.noReboot, QMP: qmpPath,
		Kernel: target.name + "-kernel", Initrd: target.name + "-initrd.img",
		Detached: o.detached, ConsoleFile: consoleLog, PIDFile: pidFile,
	}
	m.UEFI = o.uefi
	if image {
		m.Kernel, m.Initrd = "", "" // the file's own, if any (Target)
		how, err := m.Target(arg, o.uefi)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if m.Initrd == "" && (o.cmdline != "" || o.extra != "") {
			return usageErrorf(c, "%s carries its own kernel command line; --cmdline and --append are for kernel+initrd outputs", arg)
		}
		fmt.Fprintf(os.Stderr, "keel: run %s: %s\n", arg, how)
	}
	for i, spec := range o.disks {
		d, err := qemu.ParseDisk(spec)
		if err != nil {
			return usageErrorf(c, "--disk: %v", err)
		}
		if d.Path == "" {
			ext := ".img"
			if d.Format == qemu.QCOW2 {
				ext = ".qcow2"
			}
			d.Path = filepath.Join(state, fmt.Sprintf("disk%d%s", i, ext))
		}
		m.Disks = append(m.Disks, d)
	}
	prefer := strings.HasSuffix(arg, squashfsInitrdSuffix) || strings.HasSuffix(arg, squashfsDiskSuffix)
	if !image && target.tar == "" && squashfsBoot(&m.Initrd, &m.Disks, target.name, prefer) {
		fmt.Fprintf(os.Stderr, "keel: run %s as kernel+squashfs: initrd %s, disk %s\n", target.name, m.Initrd, m.Disks[0].Path)
	}
	for _, p := range o.publish {
		if _, err := qemu.ParsePublish(p); err != nil {
			return usageErrorf(c, "--publish: %v", err)
		}
	}
	if !o.dryRun {
		if err := os.MkdirAll(state, 0o755); err != nil {
			return fmt.Errorf("run: state directory: %w", err)
		}
		if _, err := qemu.QMP(qmpPath, "query-status", nil); err == nil {
			return fmt.Errorf("run: a VM is running with state %s already (keel run --stop --state %s)", state, state)
		}
	}
	if m.UEFI {
		if o.dryRun {
			m.VarsFile = filepath.Join(state, "OVMF_VARS.fd") // named, not made
		} else if err := m.PrivateVars(state); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}

	// The boot files: the build's, or those a tar-kernel-initrd holds,
	// written into the state directory (named there, not written, for a
	// dry run).
	cmdline := o.cmdline
	switch {
	case image:
		// The image's own (a UKI's or disk's), or a NAME-vmlinux's file's.
		if cmdline == "" {
			cmdline = m.Cmdline
		}
	case target.tar != "":
		m.Kernel, m.Initrd = filepath.Join(state, "kernel"), filepath.Join(state, "initrd.img")
		dir := state
		if o.dryRun {
			dir = ""
		}
		tarCmdline, err := readKernelInitrdTar(target.tar, dir)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if cmdline == "" {
			cmdline = tarCmdline
		}
	case cmdline == "":
		b, err := os.ReadFile(target.name + "-cmdline")
		if err != nil {
			return fmt.Errorf("run: %w (build it with `keel build`)", err)
		}
		cmdline = strings.TrimSpace(string(b))
	}
	if !image {
		firmware := map[bool]string{true: "UEFI (OVMF)", false: "BIOS (SeaBIOS)"}[m.UEFI]
		fmt.Fprintf(os.Stderr, "keel: run %s: %s and %s, direct kernel boot (-kernel) under %s\n", target.name, m.Kernel, m.Initrd, firmware)
	}
	m.Cmdline = strings.TrimSpace(cmdline + " " + o.extra)

	ctx := context.Background()
	switch o.accel {
	case "auto":
		// A dry run does not boot the probe kernel.
		kernel := m.Kernel
		if o.dryRun {
			kernel = ""
		}
		var why string
		m.Accel, why = qemu.Detect(ctx, kernel)
		fmt.Fprintf(os.Stderr, "keel: run %s accel=%s (%s)\n", target.name, m.Accel, why)
	case qemu.KVM, qemu.TCG:
		m.Accel = o.accel
	default:
		return usageErrorf(c, "--accel %q: want auto, kvm or tcg", o.accel)
	}

	if o.dryRun {
		args, err := m.Args()
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		fmt.Fprintln(c.OutOrStdout(), shellLine(append([]string{qemu.Binary}, args...)))
		return nil
	}
	for _, d := range m.Disks {
		if err := d.Create(ctx); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	cmd, err := m.Command(ctx)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if o.detached {
		return startDetached(c, cmd, target.name, state)
	}
	log, err := os.Create(consoleLog)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer log.Close()
	return runForeground(cmd, log)
}

// startDetached starts QEMU in the background: QEMU daemonizes once the VM
// runs, so its first process's exit is the start's outcome.
func startDetached(c *cobra.Command, cmd *exec.Cmd, name, state string) error {
	var stderr strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run: start qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	_, console, pid := statePaths(state)
	fmt.Fprintf(c.OutOrStdout(), "started %s in the background: console %s, pid in %s; stop it with keel run --stop --state %s\n",
		name, console, pid, state)
	return nil
}

// runForeground runs QEMU with the console on this terminal, logged too.
func runForeground(cmd *exec.Cmd, log io.Writer) error {
	// The console goes to our stdout through a watcher, so that a guest that
	// halts or panics (where QEMU would sit forever) ends the run too.
	watch := qemu.NewWatcher()
	cmd.Stdin = os.Stdin
	cmd.Stdout = multiWriter{os.Stdout, watch, log}
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

	var err error
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

// stopVM is `keel run --stop [NAME]`: power off the VM of a state
// directory through its QMP socket, and wait for QEMU to exit.
func stopVM(c *cobra.Command, args []string, o runOptions) error {
	state := o.state
	if state == "" {
		state = targetName(args[0]) + "-state"
	}
	qmpPath, _, _ := statePaths(state)
	if o.qmp != "" {
		qmpPath = o.qmp
	}
	graceful, err := qemu.Stop(qmpPath, o.stopGrace)
	if err != nil {
		return fmt.Errorf("run --stop: no VM answers on %s: %w", qmpPath, err)
	}
	if graceful {
		fmt.Fprintf(c.OutOrStdout(), "stopped %s: the guest powered off\n", state)
	} else {
		fmt.Fprintf(c.OutOrStdout(), "stopped %s: the guest did not power off within %v; QEMU was told to quit\n", state, o.stopGrace)
	}
	return nil
}

// shellLine is args as a shell command line, each word quoted if needed.
func shellLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,.:/+@%") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// multiWriter writes to every writer and never fails because one did:
// the console must keep flowing.
type multiWriter []io.Writer

func (w multiWriter) Write(p []byte) (int, error) {
	for _, x := range w {
		x.Write(p)
	}
	return len(p), nil
}

// isBootImage reports whether arg is a file keel run boots as what it is
// (a disk image, a UKI, a NAME-vmlinux) rather than one of a build's
// kernel+initrd outputs or a tar-kernel-initrd.
func isBootImage(arg string) bool {
	if !isFile(arg) || targetName(arg) != arg || strings.HasSuffix(arg, ".tar") {
		return false
	}
	return true
}
