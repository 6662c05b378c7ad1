package main

import (
	"os"
	"os/exec"
	"testing"
)

const execMemfdEnv = "KEEL_TEST_EXEC_MEMFD"

// The test binary re-runs itself with execMemfdEnv set; that child replaces
// itself with busybox through a sealed memfd, and busybox must then report
// that /proc/self/exe is a memfd.
func TestExecMemfd(t *testing.T) {
	if os.Getenv(execMemfdEnv) != "" {
		err := execMemfd("/bin/busybox", []string{"readlink", "/proc/self/exe"}, os.Environ())
		t.Fatalf("execMemfd returned: %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("needs /bin/busybox: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExecMemfd$")
	cmd.Env = append(os.Environ(), execMemfdEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := string(out); len(got) < 7 || got[:7] != "/memfd:" {
		t.Fatalf("exe of the re-executed process is %q, want a memfd", got)
	}
	t.Logf("re-executed from %s", out)
}
