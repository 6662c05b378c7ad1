package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"
	"golang.org/x/sys/unix"
)

// ConsoleShell keeps an interactive shell on the console for a person to
// debug with: a new session whose controlling terminal is the console's
// tty, respawned when it exits. It is started like every other child,
// through the reaper.
type ConsoleShell struct {
	Reaper *Reaper
	// Shell is the shell to run, e.g. /bin/sh (busybox ash).
	Shell string
	// TTY is the terminal device; empty means the device behind
	// /dev/console (e.g. /dev/ttyS0), which unlike /dev/console can be a
	// controlling terminal with job control.
	TTY string
	Env []string
	Log *slog.Logger
	// MinInterval spaces out respawns of a shell that exits at once
	// (default 1 s), so a broken tty cannot make a busy loop.
	MinInterval time.Duration
	// Started, if set, is called with the pid of each shell started.
	Started func(pid int)
}

// ConsoleTTY returns the device /dev/console writes to: the last entry of
// /sys/class/tty/console/active (e.g. /dev/ttyS0), or /dev/console when that
// cannot be read.
func ConsoleTTY(active string) string {
	b, err := os.ReadFile(active)
	if err != nil {
		return "/dev/console"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "/dev/console"
	}
	return "/dev/" + f[len(f)-1]
}

// ErrNoShell is returned by Run when the shell does not exist in the image.
var ErrNoShell = errors.New("no shell in the image")

// Run keeps the shell running until ctx is done, then hangs it up (SIGHUP
// to its session, SIGKILL if it lingers) and returns once it has exited.
func (c *ConsoleShell) Run(ctx context.Context) error {
	if _, err := os.Stat(c.Shell); err != nil {
		return fmt.Errorf("console shell %s: %w", c.Shell, ErrNoShell)
	}
	tty := c.TTY
	if tty == "" {
		tty = ConsoleTTY("/sys/class/tty/console/active")
	}
	interval := c.MinInterval
	if interval <= 0 {
		interval = time.Second
	}
	for ctx.Err() == nil {
		started := time.Now()
		pid, exited, err := c.start(tty)
		if err != nil {
			c.Log.Warn("console shell failed to start", "tty", tty, "err", err)
		} else {
			if c.Started != nil {
				c.Started(pid)
			}
			select {
			case e := <-exited:
				c.Log.Info("console shell exited", "exit", e)
			case <-ctx.Done():
				hangUp(pid, exited)
				return nil
			}
		}
		if wait := interval - time.Since(started); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	return nil
}

func (c *ConsoleShell) start(tty string) (int, <-chan Exit, error) {
	f, err := os.OpenFile(tty, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close() // the shell has its own copies
	cmd := exec.Command(c.Shell)
	cmd.Args = []string{"sh"}
	cmd.Dir = "/"
	cmd.Env = c.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	// A session of its own with the tty as controlling terminal (setsid,
	// then TIOCSCTTY on fd 0): job control and ctrl-c work.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	exited, err := c.Reaper.Start(cmd)
	if err != nil {
		return 0, nil, err
	}
	pid := cmd.Process.Pid
	out := make(chan Exit, 1)
	goroutine.Go(c.Log, "console shell wait", false, func() {
		e := <-exited
		_ = cmd.Wait() // releases the process; the status is the reaper's
		out <- e
	})
	return pid, out, nil
}

// hangUpGrace is how long a shell has to go after SIGHUP.
const hangUpGrace = 200 * time.Millisecond

// hangUp ends the shell's session as a hung-up terminal would: an
// interactive shell ignores SIGTERM, not SIGHUP.
func hangUp(pid int, exited <-chan Exit) {
	_ = unix.Kill(-pid, unix.SIGHUP)
	_ = unix.Kill(pid, unix.SIGCONT)
	select {
	case <-exited:
		return
	case <-time.After(hangUpGrace):
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	select {
	case <-exited:
	case <-time.After(time.Second):
	}
}
