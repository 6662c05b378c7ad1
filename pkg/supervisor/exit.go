package supervisor

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// Exit is how a child process ended, as reported by wait4.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
}

// Success reports whether the process exited with code 0.
func (e Exit) Success() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

// Code is the exit code the way a shell reports it: the exit status, or
// 128+N for a death by signal N.
func (e Exit) Code() int {
	if e.Status.Signaled() {
		return 128 + int(e.Status.Signal())
	}
	return e.Status.ExitStatus()
}

// String is the console form: "0", "3", or "signal:SIGKILL".
func (e Exit) String() string {
	if e.Status.Signaled() {
		name := unix.SignalName(e.Status.Signal())
		if name == "" {
			name = strconv.Itoa(int(e.Status.Signal()))
		}
		return "signal:" + name
	}
	return strconv.Itoa(e.Status.ExitStatus())
}
