package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestConsoleTTY(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "active")
	if got := ConsoleTTY(p); got != "/dev/console" {
		t.Errorf("missing file: %s", got)
	}
	os.WriteFile(p, []byte("tty0 ttyS0\n"), 0o644)
	if got := ConsoleTTY(p); got != "/dev/ttyS0" {
		t.Errorf("got %s", got)
	}
}

// openPty returns a pty master and the path of its slave.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "ptmx"), "/dev/pts/" + strconv.Itoa(n)
}

// The shell runs on the tty with it as controlling terminal, answers
// commands, is respawned after exit, and is hung up when stopped.
func TestConsoleShellRespawnsAndStops(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	master, slave := openPty(t)
	defer master.Close()

	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	defer signal.Stop(sigchld)
	reaper := NewReaper(nil)
	rctx, stopReaper := context.WithCancel(context.Background())
	defer stopReaper()
	go reaper.Run(rctx, sigchld)

	pids := make(chan int, 4)
	c := &ConsoleShell{Reaper: reaper, Shell: "/bin/sh", TTY: slave, Env: []string{"PATH=/usr/bin:/bin", "PS1=$ "},
		Log: slog.New(slog.DiscardHandler), MinInterval: 10 * time.Millisecond, Started: func(pid int) { pids <- pid }}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	lines := make(chan string, 100)
	go func() {
		// The master reads EIO while no shell has the slave open (between
		// respawns): keep reading until the test closes it.
		r := bufio.NewReader(master)
		for {
			l, err := r.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	expect := func(want string) string {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case l := <-lines:
				if strings.Contains(l, want) && !strings.Contains(l, "echo") {
					return l
				}
			case <-timeout:
				t.Fatalf("no line with %q", want)
			}
		}
	}
	first := <-pids
	// The shell leads its own session and owns the tty.
	master.WriteString("echo sid=$(cut -d' ' -f6 /proc/$$/stat) tpgid=$(cut -d' ' -f8 /proc/$$/stat) pid=$$ x$((40+2))\n")
	l := expect("x42")
	pid := strconv.Itoa(first)
	if !strings.Contains(l, "sid="+pid+" tpgid="+pid+" pid="+pid) {
		t.Errorf("shell is not a session leader owning its tty: %q (pid %s)", l, pid)
	}
	master.WriteString("exit\n")
	second := <-pids
	if second == first {
		t.Fatal("not respawned")
	}
	master.WriteString("echo again$((1+1))\n")
	expect("again2")
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after stop")
	}
	// Killed, though the reaper may not have collected it yet: a zombie
	// still answers kill(pid, 0), so look at its state instead.
	eventually(t, fmt.Sprintf("shell %d to end after stop", second), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", second))
		if err != nil {
			return true
		}
		_, after, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(after, "Z")
	})
}
