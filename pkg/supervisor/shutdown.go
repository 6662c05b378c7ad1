package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/keel-os/keel/pkg/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Action is what the machine does at the end of a shutdown.
type Action int

const (
	Reboot Action = iota
	Halt
	PowerOff
)

func (a Action) String() string {
	switch a {
	case Reboot:
		return "reboot"
	case Halt:
		return "halt"
	case PowerOff:
		return "power-off"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// rebootCmd is the reboot(2) command that carries out a.
func (a Action) rebootCmd() int {
	switch a {
	case Halt:
		return unix.LINUX_REBOOT_CMD_HALT
	case PowerOff:
		return unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	return unix.LINUX_REBOOT_CMD_RESTART
}

// ActionFor maps the signals PID 1 is asked to shut down with to what it
// should do, following sysvinit and busybox (whose reboot, halt and poweroff
// send exactly these to PID 1): TERM reboots, USR1 halts, USR2 and PWR
// power off. INT is ctrl-alt-del once reboot(CAD_OFF) has been called, and
// reboots. Other signals ask for nothing.
func ActionFor(sig os.Signal) (Action, bool) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		return Reboot, true
	case unix.SIGUSR1:
		return Halt, true
	case unix.SIGUSR2, unix.SIGPWR:
		return PowerOff, true
	}
	return 0, false
}

// DefaultGrace is how long processes get between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Shutdown stops everything and ends the machine, in this order:
//
//  1. the console shell is hung up (StopConsole), so nothing respawns it;
//  2. the onshutdown bundles run (Onshutdown), within OnshutdownBudget;
//  3. the services are stopped (Services), within ServicesBudget;
//  4. containerd is stopped (Containerd), within ContainerdStopGrace;
//  5. every process left gets SIGTERM, then SIGKILL after Grace (or at
//     once when all are gone, so an idle machine goes down in
//     milliseconds);
//  6. sync, then the filesystems are unmounted: those others mounted
//     deepest first, then PID 1's own in reverse order; a busy
//     one is remounted read-only and the processes holding it are named;
//  7. sync, reboot(2).
//
// Each step is bounded, so the whole is: at most OnshutdownBudget +
// ServicesBudget + ContainerdStopGrace + Grace + 1 s, plus the unmounts.
type Shutdown struct {
	Reaper *Reaper
	Mounts *mount.Table
	Log    *slog.Logger
	Grace  time.Duration // DefaultGrace if 0

	// StopConsole, when set, ends the console shell and its respawning.
	// It must return within a second or so.
	StopConsole func()
	// Onshutdown, when set, runs the onshutdown bundles; ctx ends when
	// OnshutdownBudget is spent.
	Onshutdown func(ctx context.Context)

	// Services and Containerd, when set, are stopped in that order before
	// every other process is signalled: services get their own SIGTERM and
	// grace period, then containerd exits cleanly.
	Services   interface{ StopServices(context.Context) error }
	Containerd interface{ Stop(context.Context) error }
	// Flush, when set, gives the console a last chance to show the
	// shutdown's lines before reboot(2); it must be bounded.
	Flush func()

	// The system calls, replaced in tests: signalling every process but
	// PID 1 is not something a test process may do.
	killAll   func(unix.Signal) error
	sync      func()
	unmounter mount.Unmounter
	mounts    func() ([]*mountinfo.Info, error) // the namespace's mounts
	reboot    func(cmd int) error
	procRoot  string // where busy mounts' holders are looked for; /proc
}

// OnshutdownBudget bounds the time all onshutdown bundles may take.
const OnshutdownBudget = 30 * time.Second

// pollChildren is how often the shutdown checks whether processes are left.
const pollChildren = 5 * time.Millisecond

// Run shuts down with action a. It returns only if reboot(2) fails; the
// caller then has nothing better to do than stay alive.
func (s *Shutdown) Run(a Action) error {
	killAll, sync, unmounter, reboot := s.killAll, s.sync, s.unmounter, s.reboot
	if killAll == nil {
		killAll = func(sig unix.Signal) error { return unix.Kill(-1, sig) }
	}
	if sync == nil {
		sync = unix.Sync
	}
	if unmounter == nil {
		unmounter = mount.Syscalls{}
	}
	if reboot == nil {
		reboot = unix.Reboot
	}
	mounts := s.mounts
	if mounts == nil {
		mounts = func() ([]*mountinfo.Info, error) { return mountinfo.GetMounts(nil) }
	}
	grace := s.Grace
	if grace == 0 {
		grace = DefaultGrace
	}

	s.Log.Info("shutdown " + a.String())
	start := time.Now()
	if s.StopConsole != nil {
		// The line above reaches the console before its shell is hung
		// up: once, in CI, it never did (the shell's session ending, its
		// tty hung up while the line sat in the console's queue, is the
		// suspect; not proven).
		if s.Flush != nil {
			s.Flush()
		}
		s.StopConsole()
	}
	if s.Onshutdown != nil {
		ctx, cancel := context.WithTimeout(context.Background(), OnshutdownBudget)
		s.Onshutdown(ctx)
		cancel()
	}
	s.stopServices()
	if !s.stopAll(killAll, unix.SIGTERM, grace) {
		s.Log.Warn("shutdown: processes left after grace period, killing", "grace", grace)
		if !s.stopAll(killAll, unix.SIGKILL, time.Second) {
			s.Log.Warn("shutdown: processes survived SIGKILL")
		}
	}
	s.Log.Info("shutdown: processes stopped", "duration", time.Since(start).Round(time.Millisecond))

	sync()
	procRoot := s.procRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	naming := mount.NamingUnmounter{Unmounter: unmounter, ProcRoot: procRoot, Busy: s.logBusy}
	// First what others mounted into PID 1's namespace (a data disk
	// mounted by an onboot container with shared propagation sits on
	// PID 1's /var), then PID 1's own mounts, /proc last.
	if ms, err := mounts(); err != nil {
		s.Log.Warn("shutdown: list mounts", "err", err)
	} else if err := s.Mounts.UnmountOthers(naming, ms, "/"); err != nil {
		s.Log.Warn("shutdown: unmount", "err", err)
	}
	if err := s.Mounts.UnmountAll(naming); err != nil {
		s.Log.Warn("shutdown: unmount", "err", err)
	}
	sync()
	s.Log.Info("shutdown: "+a.String()+" now", "after", time.Since(start).Round(time.Millisecond))
	if s.Flush != nil {
		s.Flush()
	}
	if err := reboot(a.rebootCmd()); err != nil {
		return fmt.Errorf("shutdown: reboot(2) for %s: %w", a, err)
	}
	return nil
}

// ServicesBudget bounds the time stopping the services may take in all:
// past it, whatever still runs is killed, so that neither a long grace
// period nor a wedged containerd holds up the power-off for ever.
const ServicesBudget = 40 * time.Second

// ContainerdStopGrace is how long containerd has to exit on SIGTERM.
const ContainerdStopGrace = 3 * time.Second

func (s *Shutdown) stopServices() {
	if s.Services != nil {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), ServicesBudget)
		if err := s.Services.StopServices(ctx); err != nil {
			s.Log.Warn("shutdown: services", "err", err)
		}
		cancel()
		s.Log.Info("shutdown: services stopped", "duration", time.Since(start).Round(time.Millisecond))
	}
	if s.Containerd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ContainerdStopGrace)
		if err := s.Containerd.Stop(ctx); err != nil {
			s.Log.Warn("shutdown: containerd", "err", err)
		}
		cancel()
	}
}

// logBusy names what keeps a mount busy; UnmountAll then remounts it
// read-only.
func (s *Shutdown) logBusy(target string, holders []mount.Holder, err error) {
	var names []string
	others := false
	for _, h := range holders {
		names = append(names, h.String())
		others = others || h.Pid != os.Getpid()
	}
	held := strings.Join(names, "; ")
	if err == nil && len(holders) > 0 && !others {
		// Only PID 1 itself, e.g. /dev for its console: expected.
		s.Log.Debug("shutdown: "+target+" held by init, remounting read-only", "held_by", held)
		return
	}
	if err != nil {
		held = "unknown: " + err.Error()
	} else if held == "" {
		held = "no process (a mount below it, or the kernel)"
	}
	s.Log.Warn("shutdown: "+target+" busy, remounting read-only", "held_by", held)
}

// stopAll sends sig to every process and reports whether all were gone
// within d.
func (s *Shutdown) stopAll(killAll func(unix.Signal) error, sig unix.Signal, d time.Duration) bool {
	// ESRCH: there was nobody to signal.
	if err := killAll(sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.Log.Warn("shutdown: signal all processes", "signal", unix.SignalName(sig), "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Reaper.WaitChildless(ctx, pollChildren) == nil
}
