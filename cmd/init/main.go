// Command init is keel's PID 1. It moves off the initramfs root, mounts
// the system filesystems and loads the drivers, then hands over to the
// supervisor's System: the onboot containers in order, the console shell,
// containerd and the services; and on a signal or the power button, the
// shutdown. It must never exit: PID 1 exiting panics the kernel.
//
// The same binary is containerd, ctr and the runc shim when run under
// their names (pkg/containerdcmd), and the console's keel command.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/containerdcmd"
	"github.com/keel-os/keel/pkg/goroutine"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/keel-os/keel/pkg/squashfsroot"
	"github.com/keel-os/keel/pkg/supervisor"
	"github.com/opencontainers/runc/libcontainer"

	// nsenter's constructor runs before the Go runtime in "init" children
	// and sets up the container's namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"golang.org/x/sys/unix"
)

const (
	// containerState is libcontainer's state directory.
	containerState = "/run/keel/containers"
	logDir         = "/var/log"
	defaultPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// This binary is more than PID 1, and what it runs as is decided here,
// before main:
//   - libcontainer starts each container by re-executing it as "init ..."
//     with its sync pipe in the environment; that child must become the
//     container's init, not run keel. Its pid cannot tell: in a container
//     with its own pid namespace it is pid 1 too. The kernel may also hand
//     PID 1 a bare "init" word from its command line, so the argument alone
//     is not enough either.
//   - Run as containerd, ctr or containerd-shim-runc-v2 (hard links in
//     /usr/bin), it is that program (pkg/containerdcmd).
//   - Run as keel, it is the console's status command (services.go).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init() // never returns
	}
	if code, ok := containerdcmd.Run(filepath.Base(os.Args[0])); ok {
		os.Exit(code)
	}
}

func main() {
	// First: a signal with no handler of ours would end PID 1.
	sigs := catchSignals()
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

	p := &pid1{log: log, console: console, requests: make(chan supervisor.Action, 1)}
	p.shutdownFn = p.shutdown
	p.run(p.boot, sigs.shutdown)
}

// run runs the boot, then waits for shutdown requests for ever. A panic
// in the boot leaves a PID 1 that still reaps and still shuts down on
// request with whatever was set up; a panic while idle (in a shutdown)
// is logged and the waiting goes on.
func (p *pid1) run(boot func(), signals <-chan os.Signal) {
	goroutine.Run(p.log, "boot", boot)
	for {
		goroutine.Run(p.log, "idle", func() { p.idle(signals) })
		time.Sleep(100 * time.Millisecond) // never spin
	}
}

// pid1 is what PID 1 has set up so far.
type pid1 struct {
	log      *slog.Logger
	console  *bootlog.Console
	requests chan supervisor.Action // shutdowns PID 1 asks for itself
	// shutdownFn is shutdown; tests replace it.
	shutdownFn func(supervisor.Action) error
	reaper     *supervisor.Reaper
	mounts     *mount.Table
	system     *supervisor.System
}

// boot is the boot sequence, up to the System's phases, which run in the
// background.
func (p *pid1) boot() {
	log := p.log
	if os.Getpid() == 1 {
		switchRoot(log)
	}
	log.Info("init started", "pid", os.Getpid())
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}
	p.reaper = supervisor.NewReaper(log)
	goroutine.Go(log, "reaper", true, func() { p.reaper.Run(context.Background(), sigChild) })

	applyXattrs(log) // xattrs.go: file capabilities, before anything is mounted over /
	p.mounts = mountSystem(log)
	if !checkInitrd(log, "/", guestSys) { // seals.go: a partly unpacked initrd runs nothing
		p.request(supervisor.Halt)
		return
	}
	args := readCmdline()
	setUpSystem(log, args) // system.go: modules, hostname, loopback, rlimits
	if os.Getpid() == 1 {
		// ctrl-alt-del then arrives as SIGINT instead of an instant reboot.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
			log.Warn("disable ctrl-alt-del", "err", err)
		}
	}
	watchPowerButton(log, p.request)
	p.system = supervisor.NewSystem(&supervisor.System{
		Log:      log,
		Console:  p.console,
		Reaper:   p.reaper,
		Mounts:   p.mounts,
		LogDir:   logDir,
		StateDir: containerState,
		Shell:    newConsole(log, p.reaper, args),
		Oneshot:  args.Flag(paramOneshot),
		Request:  p.request,
		Runtime:  serviceRuntime(log, crunPath),
	})
	goroutine.Go(log, "system", false, p.system.Boot)
}

// crunPath is where keel/init has crun.
const crunPath = "/usr/bin/crun"

// serviceRuntime is the OCI runtime the runc shim runs for the services:
// crun when the image has it, else the shim's default (runc). Under
// emulation runc's create and start are three Go program starts per
// service (create, init, start); crun's are C.
func serviceRuntime(log *slog.Logger, crun string) string {
	if st, err := os.Stat(crun); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		log.Debug("services run under crun", "path", crun)
		return crun
	}
	log.Debug("services run under runc: no " + crun)
	return ""
}

// request asks for a shutdown; one already asked for wins.
func (p *pid1) request(a supervisor.Action) {
	select {
	case p.requests <- a:
	default:
	}
}

// idle waits for shutdown requests for ever. A shutdown normally ends the
// machine; if it returns, PID 1 keeps waiting.
func (p *pid1) idle(signals <-chan os.Signal) {
	for {
		var a supervisor.Action
		select {
		case a = <-p.requests:
		case sig := <-signals:
			var ok bool
			if a, ok = supervisor.ActionFor(sig); !ok {
				p.log.Info("signal ignored", "signal", signalName(sig))
				continue
			}
		}
		if err := p.shutdownFn(a); err != nil {
			p.log.Error("shutdown failed, idling", "err", err)
		}
	}
}

// shutdown shuts down with what the boot set up, however far it got.
func (p *pid1) shutdown(a supervisor.Action) error {
	if p.system != nil {
		return p.system.Shutdown(a)
	}
	reaper := p.reaper
	if reaper == nil {
		reaper = supervisor.NewReaper(p.log)
	}
	mounts := p.mounts
	if mounts == nil {
		mounts = &mount.Table{}
	}
	sd := &supervisor.Shutdown{Reaper: reaper, Mounts: mounts, Log: p.log}
	return sd.Run(a)
}

// mountSystem mounts the system filesystems and delegates the cgroup
// controllers. Failures are logged: a partly mounted system still boots
// further than a stopped one.
func mountSystem(log *slog.Logger) *mount.Table {
	var mounts mount.Table
	if err := mounts.System(); err != nil {
		log.Error("mount filesystems", "err", err)
	}
	log.Info("mounted filesystems", "count", len(mounts.Targets()))
	if enabled, err := mount.EnableControllers("/sys/fs/cgroup"); err != nil {
		log.Warn("cgroup controllers", "enabled", fmt.Sprint(enabled), "err", err)
	} else {
		log.Debug("cgroup controllers", "enabled", fmt.Sprint(enabled))
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
	// An initrd whose /init is this binary rather than the small init
	// (cmd/squashfsinit): the same steps, then the disk's PID 1.
	if done, err := squashfsroot.Mount(log); done {
		if err := squashfsroot.ExecInit(); err != nil {
			log.Warn("squashfs root: exec /init, booting on", "err", err)
		}
		return
	} else if err != nil {
		log.Error("root on squashfs failed, staying on the initramfs", "err", err)
	}
	// KEEL_ROOT=tmpfs on the kernel command line copies the image into a
	// tmpfs instead of binding it: slower, but an ordinary, limitable tmpfs.
	copyRoot := os.Getenv("KEEL_ROOT") == "tmpfs"
	start := time.Now()
	if err := mount.SwitchRoot(mount.StagingRoot, copyRoot); err != nil {
		log.Error("switch root failed, staying on initramfs", "err", err, "after", time.Since(start).Round(time.Millisecond))
		return
	}
	log.Info("switched root off initramfs", "copy", copyRoot, "duration", time.Since(start).Round(time.Millisecond))
}
