package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/testenv"
)

// TestPID1RunsAsEachName runs the PID 1 binary that `make images` put in
// the tools cache under each of its names: as containerd, ctr and the
// shim it is that program, at the pinned containerd version; as init,
// outside a VM, it is PID 1 and refuses to run.
func TestPID1RunsAsEachName(t *testing.T) {
	v, err := readVersions(filepath.Join("..", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("KEEL_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "keel")
	}
	dir := filepath.Join(cache, "tools", keelInitDir)
	testenv.File(t, filepath.Join(dir, "init"), "the PID 1 `make images` builds")
	want := map[string][]string{
		"containerd":              {"--version"},
		"ctr":                     {"--version"},
		"containerd-shim-runc-v2": {"-v"},
	}
	for _, name := range initNames {
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

	cmd := exec.Command(filepath.Join(dir, "init"), "--version")
	cmd.Env = append(os.Environ(), "KEEL_INIT_ANY_PID=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "not pid 1") {
		t.Fatalf("init outside a VM: err %v, output %q; want exit 1 and \"not pid 1\"", err, out)
	}
}
