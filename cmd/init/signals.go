package main

import (
	"os"
	"os/signal"
	"strconv"

	"golang.org/x/sys/unix"
)

// fatalByDefault are the signals whose Go runtime handler ends the
// program when one arrives from kill(2) and nobody asked for it with
// signal.Notify; for PID 1 that is a kernel panic. busybox init and
// systemd shrug them off: so does keel, by asking for them all.
var fatalByDefault = []os.Signal{
	unix.SIGABRT, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
	unix.SIGTRAP, unix.SIGSYS, unix.SIGQUIT, unix.SIGSTKFLT,
	// These end a program by default too.
	unix.SIGALRM, unix.SIGVTALRM, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGPIPE,
	unix.SIGIO,
}

// shutdownSignals are those PID 1 is asked to shut down with, and SIGHUP,
// which it ignores (see supervisor.ActionFor).
var shutdownSignals = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR,
}

// sigChild is SIGCHLD, for the reaper alone.
var sigChild = make(chan os.Signal, 1)

type signals struct {
	// shutdown receives every caught signal but SIGCHLD; the idle loop
	// tells a shutdown from one to log and ignore.
	shutdown chan os.Signal
}

// catchSignals asks for every signal that could end PID 1 or asks it to
// shut down. SIGURG is left alone: the Go runtime preempts goroutines with
// it, and it comes in storms.
func catchSignals() signals {
	signal.Notify(sigChild, unix.SIGCHLD)
	s := signals{shutdown: make(chan os.Signal, 32)}
	signal.Notify(s.shutdown, shutdownSignals...)
	signal.Notify(s.shutdown, fatalByDefault...)
	// The stop signals from a terminal stop nothing in PID 1.
	signal.Ignore(unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	return s
}

func signalName(sig os.Signal) string {
	if s, ok := sig.(unix.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
		return strconv.Itoa(int(s))
	}
	return sig.String()
}
