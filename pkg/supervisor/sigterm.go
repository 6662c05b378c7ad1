package supervisor

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// termIsNoOp reports whether SIGTERM cannot end the process pid: it is
// the init (pid 1) of its own pid namespace and has no handler for the
// signal. The kernel drops signals a namespace's init does not handle, so
// a shell loop run as a container's first process never sees SIGTERM, and
// waiting out a grace period for it achieves nothing (the reason Docker
// has --init). A process that ignores SIGTERM on purpose (SIG_IGN) is not
// counted: it may still finish on its own within its grace period.
func termIsNoOp(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	return statusTermIsNoOp(b)
}

// statusTermIsNoOp is termIsNoOp on the text of /proc/PID/status.
func statusTermIsNoOp(status []byte) bool {
	var nspid []string
	var caught, ignored uint64
	var haveCgt, haveIgn bool
	s := bufio.NewScanner(bytes.NewReader(status))
	for s.Scan() {
		key, val, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "NSpid":
			nspid = strings.Fields(val)
		case "SigCgt":
			caught, _ = strconv.ParseUint(val, 16, 64)
			haveCgt = true
		case "SigIgn":
			ignored, _ = strconv.ParseUint(val, 16, 64)
			haveIgn = true
		}
	}
	// NSpid lists the pid in each namespace, outermost first: pid 1 of a
	// namespace below PID 1's.
	if len(nspid) < 2 || nspid[len(nspid)-1] != "1" || !haveCgt || !haveIgn {
		return false
	}
	bit := uint64(1) << (unix.SIGTERM - 1)
	return caught&bit == 0 && ignored&bit == 0
}
