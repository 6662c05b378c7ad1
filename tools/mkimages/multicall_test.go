package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMulticallRunsAsEachName runs the containerd multi-call binary that
// `make images` put in the tools cache under each of its names, and once
// under a name it is not.
func TestMulticallRunsAsEachName(t *testing.T) {
	v, err := readVersions(filepath.Join("..", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("KEEL_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "keel")
	}
	dir := filepath.Join(cache, "tools", "containerd-multicall-"+v.Containerd)
	if _, err := os.Stat(filepath.Join(dir, multicallNames[0])); err != nil {
		t.Skipf("needs the multi-call binary `make images` builds: %v", err)
	}
	want := map[string][]string{
		"containerd":              {"--version"},
		"ctr":                     {"--version"},
		"containerd-shim-runc-v2": {"-v"},
	}
	for _, name := range multicallNames {
		args, ok := want[name]
		if !ok {
			t.Fatalf("no expectation for %s", name)
		}
		out, err := exec.Command(filepath.Join(dir, name), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, args[0], err, out)
		}
		if !strings.Contains(string(out), name) || !strings.Contains(string(out), v.Containerd) {
			t.Errorf("%s %s printed %q; want its name and %s", name, args[0], out, v.Containerd)
		}
	}

	// Any other name is refused, with exit 2, rather than run as one of them.
	other := filepath.Join(t.TempDir(), "dockerd")
	b, err := os.ReadFile(filepath.Join(dir, multicallNames[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(other, "--version").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("run as dockerd: err %v, output %q; want exit 2", err, out)
	}
	if !strings.Contains(string(out), `run as "dockerd"`) {
		t.Errorf("run as dockerd printed %q", out)
	}
}
