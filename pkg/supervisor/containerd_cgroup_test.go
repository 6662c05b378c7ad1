package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

// The cgroup is made level by level with cpu delegated above it, and
// cpu.idle follows Idle; a directory outside the root is refused. A plain
// directory stands in for the cgroup v2 root (the real one is exercised by
// the services boot test).
func TestContainerdCgroup(t *testing.T) {
	root := t.TempDir()
	g := containerdCgroup{dir: filepath.Join(root, "podruntime", "containerd")}
	f, err := g.open(root)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := os.ReadFile(filepath.Join(root, "podruntime", "cgroup.subtree_control")); err != nil || string(b) != "+cpu" {
		t.Errorf("podruntime's subtree_control: %q, %v; want +cpu", b, err)
	}
	if _, err := os.Stat(filepath.Join(g.dir, "cgroup.subtree_control")); err == nil {
		t.Errorf("containerd's own cgroup delegates: it holds processes, it must not")
	}
	for _, on := range []bool{true, false} {
		if err := g.idle(on); err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: "1", false: "0"}[on]
		if b, _ := os.ReadFile(filepath.Join(g.dir, "cpu.idle")); string(b) != want {
			t.Errorf("cpu.idle after idle(%t): %q", on, b)
		}
	}
	if _, err := (containerdCgroup{dir: "/elsewhere/containerd"}).open(root); err == nil {
		t.Error("a cgroup outside the root was accepted")
	}

	// Containerd.Idle writes through once the cgroup exists.
	c := &Containerd{Cgroup: g.dir}
	c.defaults()
	c.Idle(true)
	if b, _ := os.ReadFile(filepath.Join(g.dir, "cpu.idle")); string(b) != "1" {
		t.Errorf("cpu.idle after Idle(true): %q", b)
	}
}
