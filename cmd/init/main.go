// Command init is keel's PID 1. It moves off the initramfs root, mounts
// the system filesystems, runs the onboot containers in order, then waits
// for a signal to reboot, halt or power off. It must never exit: PID 1
// exiting panics the kernel.
package main

import (
	"context"
	"fmt"
	"github.com/keel-os/keel/pkg/goroutine"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/keel-os/keel/pkg/supervisor"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter's constructor runs before the Go runtime in "init" children
	// and sets up the container's namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"golang.org/x/sys/unix"
)

const (
	// newRootDir is where the mount that replaces the initramfs as / is
	// made.
	newRootDir = "/.keel-root"
	// containerState is libcontainer's state directory.
	containerState = "/run/keel/containers"
	logDir         = "/var/log"
	defaultPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// libcontainer starts each container by re-executing this binary as
// "init ..." with its sync pipe in the environment; that child must become
// the container's init, not run keel. Its pid cannot tell: in a container
// with its own pid namespace it is pid 1 too. The kernel may also hand PID 1
// a bare "init" word from its command line, so the argument alone is not
// enough either.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init() // never returns
	}
}

func main() {
	// First: with no handler, a fatal signal would end PID 1. SIGURG is
	// left alone, the Go runtime uses it for preemption.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR)

	initStart() // the boot report counts from here

	if os.Getpid() != 1 && os.Getenv("KEEL_INIT_ANY_PID") == "" {
		// Outside a VM this would mount over the host's /proc and /dev and
		// signal every process at shutdown.
		fmt.Fprintln(os.Stderr, "keel init: not pid 1; refusing to run (set KEEL_INIT_ANY_PID=1 to insist)")
		os.Exit(1)
	}

	console := bootlog.New(os.Stdout)
	level := slog.LevelInfo
	if os.Getenv("KEEL_LOG") == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(console.Handler(level))
	defer func() {
		// The last resort: log and stay alive rather than panic the kernel.
		if r := recover(); r != nil {
			log.Error("init panicked, idling", "err", r)
			idle(log, sigs, nil, nil)
		}
	}()

	if os.Getpid() == 1 {
		switchRoot(log)
	}
	log.Info("init started", "pid", os.Getpid())
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}

	applyXattrs(log) // xattrs.go: file capabilities, before anything is mounted over /
	mounts := mountSystem(log)
	setUpSystem(log) // system.go: modules, hostname, loopback, rlimits
	if os.Getpid() == 1 {
		// ctrl-alt-del then arrives as SIGINT instead of an instant reboot.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
			log.Warn("disable ctrl-alt-del", "err", err)
		}
	}

	ctx, stopOnboot := context.WithCancel(context.Background())
	reaper := supervisor.NewReaper(log)
	goroutine.Go(log, "reaper", true, func() { reaper.Run(context.Background(), sigchld) })

	onboot := &supervisor.Onboot{
		Runner:  &supervisor.ContainerRunner{Reaper: reaper, StateDir: containerState, Log: log},
		Mounts:  mounts,
		Console: console,
		Log:     log,
		LogDir:  logDir,
	}
	// Asked for by PID 1 itself rather than by a signal.
	requests := make(chan supervisor.Action, 1)
	watchPowerButton(log, requests)
	shell := newConsole(log, reaper)
	oneshot := kernelParam("keel.oneshot")
	services := newServiceSystem(log, reaper, mounts) // containerd and services: services.go
	goroutine.Go(log, "onboot", false, func() {
		bundles, err := bundle.List("/", bundle.Onboot)
		if err != nil {
			log.Error("onboot", "err", err)
		}
		results := onboot.RunAll(ctx, bundles)
		if _, fatal := supervisor.Fatal(results); fatal {
			requests <- supervisor.Halt
			return
		}
		services.Start(ctx)
		if oneshot {
			log.Info("oneshot: onboot done, powering off")
			requests <- supervisor.PowerOff
		} else {
			shell.Start() // after onboot, so as not to mix with its output
		}
	})

	onshutdown := &supervisor.Onshutdown{Runner: onboot, Root: "/", Log: log}
	shutdown := &supervisor.Shutdown{Reaper: reaper, Mounts: mounts, Log: log,
		StopConsole: shell.Stop, Onshutdown: onshutdown.Run,
		Services: services.services, Containerd: services.containerd}
	idle(log, sigs, requests, func(a supervisor.Action) {
		stopOnboot()
		if err := shutdown.Run(a); err != nil {
			log.Error("shutdown failed, idling", "err", err)
		}
	})
}

// mountSystem mounts the system filesystems and delegates the cgroup
// controllers. Failures are logged: a partly mounted system still boots
// further than a stopped one.
func mountSystem(log *slog.Logger) *mount.Table {
	var mounts mount.Table
	if err := mounts.System(); err != nil {
		log.Error("mount filesystems", "err", err)
	} else {
		log.Info("mounted filesystems", "count", len(mounts.Targets()))
	}
	if enabled, err := mount.EnableControllers("/sys/fs/cgroup"); err != nil {
		log.Warn("cgroup controllers", "enabled", strings.Join(enabled, ","), "err", err)
	} else {
		log.Debug("cgroup controllers", "enabled", strings.Join(enabled, ","))
	}
	return &mounts
}

// switchRoot puts a new mount on / when / is the initramfs, so that
// containers can pivot_root. On failure boot goes on from the initramfs,
// where containers cannot pivot_root but everything else works.
func switchRoot(log *slog.Logger) {
	initramfs, err := mount.IsInitramfs()
	if err != nil {
		log.Error("check root filesystem", "err", err)
		return
	}
	if !initramfs {
		return
	}
	// KEEL_ROOT=tmpfs on the kernel command line copies the image into a
	// tmpfs instead of binding it: slower, but an ordinary, limitable tmpfs.
	copyRoot := os.Getenv("KEEL_ROOT") == "tmpfs"
	start := time.Now()
	if err := mount.SwitchRoot(newRootDir, copyRoot); err != nil {
		log.Error("switch root failed, staying on initramfs", "err", err, "after", time.Since(start).Round(time.Millisecond))
		return
	}
	log.Info("switched root off initramfs", "copy", copyRoot, "duration", time.Since(start).Round(time.Millisecond))
}

// idle waits for signals for ever. A shutdown signal runs shutdown, which
// normally ends the machine; if it returns, PID 1 keeps waiting.
func idle(log *slog.Logger, sigs <-chan os.Signal, requests <-chan supervisor.Action, shutdown func(supervisor.Action)) {
	for {
		select {
		case a := <-requests:
			if shutdown != nil {
				shutdown(a)
			}
		case sig := <-sigs:
			a, ok := supervisor.ActionFor(sig)
			if !ok || shutdown == nil {
				log.Info("signal ignored", "signal", unix.SignalName(sig.(unix.Signal)))
				continue
			}
			shutdown(a)
		}
	}
}

// kernelParam reports whether the bare word name is on the kernel command
// line. Words with a dot are module parameters to the kernel, which keeps
// them from init's argv and environment, so /proc/cmdline is read.
func kernelParam(name string) bool {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return false
	}
	for _, w := range strings.Fields(string(b)) {
		if w == name || w == name+"=1" {
			return true
		}
	}
	return false
}
