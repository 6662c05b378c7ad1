package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeelCommandUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"logs"}, {"logs", "../etc/passwd"}} {
		var out, errOut strings.Builder
		if code := keelCommand(&out, &errOut, args); code != 2 || !strings.Contains(errOut.String(), "usage: keel status") {
			t.Errorf("keel %q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestKeelLogsReadsTheLogDir(t *testing.T) {
	if _, err := os.Stat(filepath.Join(logDir, "keel-test-none.log")); err == nil {
		t.Skip("a keel-test-none.log exists")
	}
	var out, errOut strings.Builder
	if code := keelCommand(&out, &errOut, []string{"logs", "keel-test-none", "-n", "3"}); code != 1 || !strings.Contains(errOut.String(), `no log for "keel-test-none"`) {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	// The flag may come first too.
	errOut.Reset()
	if code := keelCommand(&out, &errOut, []string{"logs", "-n", "3", "keel-test-none"}); code != 1 || !strings.Contains(errOut.String(), `no log for "keel-test-none"`) {
		t.Errorf("flag first: exit %d, stderr %q", code, errOut.String())
	}
}
