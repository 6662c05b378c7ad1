package main

import (
	"os"
	"os/signal"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/initsig"
)

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
	signal.Notify(s.shutdown, initsig.Shutdown...)
	signal.Notify(s.shutdown, initsig.FatalByDefault...)
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
