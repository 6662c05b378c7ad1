package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a test: it notes how Missing ended it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestMissingSkipsByHandFailsUnderMake(t *testing.T) {
	t.Setenv(StrictVar, "")
	r := &recorder{TB: t}
	Tool(r, "keel-no-such-tool", "keel-pkg")
	if r.failed != "" || !strings.Contains(r.skipped, "keel-no-such-tool not installed (Debian package keel-pkg") {
		t.Errorf("by hand: skipped %q, failed %q", r.skipped, r.failed)
	}

	t.Setenv(StrictVar, "1")
	r = &recorder{TB: t}
	Env(r, "KEEL_NO_SUCH_VAR", "make test-go sets it")
	if r.skipped != "" || !strings.Contains(r.failed, "KEEL_NO_SUCH_VAR not set (make test-go sets it)") {
		t.Errorf("under make: skipped %q, failed %q", r.skipped, r.failed)
	}
	r = &recorder{TB: t}
	File(r, "/keel/no/such/file", "the PID 1 `make images` builds")
	if r.skipped != "" || !strings.Contains(r.failed, "needs the PID 1 `make images` builds") {
		t.Errorf("under make: skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestPresentPrerequisitesPass(t *testing.T) {
	t.Setenv(StrictVar, "1")
	t.Setenv("KEEL_SOME_VAR", "v")
	r := &recorder{TB: t}
	if p := Tool(r, "sh", "dash"); p == "" {
		t.Error("sh not found")
	}
	if v := Env(r, "KEEL_SOME_VAR", "x"); v != "v" {
		t.Errorf("Env = %q", v)
	}
	if p := File(r, "/", "the root"); p != "/" {
		t.Errorf("File = %q", p)
	}
	if r.skipped != "" || r.failed != "" {
		t.Errorf("skipped %q, failed %q", r.skipped, r.failed)
	}
}
