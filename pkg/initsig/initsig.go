// Package initsig lists the signals a Go program running as PID 1 must
// take itself: keel's PID 1 (cmd/init) and the small init of a
// kernel+squashfs initrd (cmd/squashfsinit).
package initsig

import (
	"os"

	"golang.org/x/sys/unix"
)

// FatalByDefault are the signals whose Go runtime handler ends the
// program when one arrives from kill(2) and nobody asked for it with
// signal.Notify (or signal.Ignore); for PID 1 that is a kernel panic.
// busybox init and systemd shrug them off: so does keel.
var FatalByDefault = []os.Signal{
	unix.SIGABRT, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
	unix.SIGTRAP, unix.SIGSYS, unix.SIGQUIT, unix.SIGSTKFLT,
	// These end a program by default too.
	unix.SIGALRM, unix.SIGVTALRM, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGPIPE,
	unix.SIGIO,
}

// Shutdown are the signals PID 1 is asked to shut down with, and SIGHUP,
// which keel's PID 1 ignores (see supervisor.ActionFor).
var Shutdown = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR,
}
