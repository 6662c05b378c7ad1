package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func procStatus(nspid string, cgt, ign uint64) []byte {
	return fmt.Appendf(nil, "Name:\tsh\nPid:\t4242\nNSpid:\t%s\nSigPnd:\t0000000000000000\nSigIgn:\t%016x\nSigCgt:\t%016x\n", nspid, ign, cgt)
}

func TestStatusTermIsNoOp(t *testing.T) {
	term := uint64(1) << 14
	for _, tc := range []struct {
		name   string
		status []byte
		noOp   bool
	}{
		{"namespace init, no handler", procStatus("4242\t1", 1<<16 /* SIGCHLD */, 0), true},
		{"namespace init catching TERM", procStatus("4242\t1", term|1<<16, 0), false},
		{"namespace init ignoring TERM", procStatus("4242\t1", 0, term), false},
		{"not its namespace's init", procStatus("4242\t7", 0, 0), false},
		{"in PID 1's own namespace", procStatus("4242", 0, 0), false},
		{"nested namespaces, init of the innermost", procStatus("4242\t17\t1", 0, 0), true},
		{"no signal lines", []byte("Name:\tsh\nNSpid:\t4242\t1\n"), false},
	} {
		if got := statusTermIsNoOp(tc.status); got != tc.noOp {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.noOp)
		}
	}
}

// A real shell as the init of a new pid namespace: without a trap SIGTERM
// is a no-op for it; with one it is not.
func TestTermIsNoOpRealNamespaceInit(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		script string
		noOp   bool
	}{
		{"while true; do sleep 1; done", true},
		{"trap 'exit 0' TERM; while true; do sleep 1; done", false},
	} {
		cmd := exec.Command("/bin/busybox", "sh", "-c", tc.script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start a shell in a new pid namespace: %v", err)
		}
		pid := cmd.Process.Pid
		// The trap is set a moment after the start: wait for the shell to
		// be in its loop (its sleep child exists).
		deadline := time.Now().Add(time.Minute)
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil && len(b) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the shell never got to its loop")
			}
			time.Sleep(10 * time.Millisecond)
		}
		got := termIsNoOp(pid)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if got != tc.noOp {
			t.Errorf("%q as a namespace's init: termIsNoOp = %v, want %v", tc.script, got, tc.noOp)
		}
	}
	if termIsNoOp(os.Getpid()) {
		t.Error("the test binary, in the host's namespace, counted as a namespace init")
	}
}
