package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keel validate and keel build -dry-run check several files as one merged
// configuration, and pull nothing (the images named here exist nowhere).
func TestValidateSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	base := filepath.Join(dir, "base.yml")
	extra := filepath.Join(dir, "extra.yml")
	os.WriteFile(base, []byte("kernel:\n  image: nowhere.invalid/kernel:1\ninit: [nowhere.invalid/init:1]\nservices:\n  - name: web\n    image: nowhere.invalid/web:1\n"), 0o644)
	os.WriteFile(extra, []byte("services:\n  - name: db\n    image: nowhere.invalid/db:1\n    uid: web\n"), 0o644)
	for _, args := range [][]string{{"validate", base, extra}, {"build", "-dry-run", "-dir", dir, base, extra}} {
		if err := dispatch(args); err != nil {
			t.Errorf("%s: %v", strings.Join(args, " "), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("dry run wrote something: %v", entries)
	}
	os.WriteFile(extra, []byte("services:\n  - name: web\n    image: nowhere.invalid/db:1\n"), 0o644)
	want := extra + `:2:11: services[1].name: duplicate name "web" (first used at ` + base + `:5:11)`
	for _, args := range [][]string{{"validate", base, extra}, {"build", "-dry-run", base, extra}} {
		if err := dispatch(args); err == nil || err.Error() != want {
			t.Errorf("%s: error = %v, want %s", strings.Join(args, " "), err, want)
		}
	}
}
