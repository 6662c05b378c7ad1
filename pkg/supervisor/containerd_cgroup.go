package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultContainerdCgroup is containerd's cgroup, below the cgroup v2 root,
// as LinuxKit names it; its shims live there too (the services each have
// their own).
const DefaultContainerdCgroup = "podruntime/containerd"

// containerdCgroup is the cgroup containerd is started in, which lets PID 1
// make it yield the CPU to the onboot containers it starts alongside:
// with cpu.idle set, the scheduler runs it only when nothing else wants to
// run, so with one CPU onboot is as quick as with containerd not started,
// and with more the others are used.
type containerdCgroup struct {
	dir string // e.g. /sys/fs/cgroup/podruntime/containerd
}

// open makes the cgroup, with the cpu controller enabled above it, and
// returns a descriptor of it to start the daemon in (CLONE_INTO_CGROUP),
// so that not one of its threads is ever outside it.
func (g containerdCgroup) open(root string) (*os.File, error) {
	rel, err := filepath.Rel(root, g.dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("containerd cgroup %s: not below %s", g.dir, root)
	}
	// Every level down to the cgroup's parent delegates cpu to its
	// children; the root already does (mount.EnableControllers).
	parts := strings.Split(rel, string(filepath.Separator))
	dir := root
	for i, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("containerd cgroup: %w", err)
		}
		if i < len(parts)-1 {
			// Refused when the kernel has no cpu controller: cpu.idle is
			// then missing, which idle reports.
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu"), 0)
		}
	}
	f, err := os.OpenFile(g.dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("containerd cgroup: %w", err)
	}
	return f, nil
}

// idle sets or clears the cgroup's cpu.idle.
func (g containerdCgroup) idle(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cpu.idle"), []byte(v), 0); err != nil {
		return fmt.Errorf("containerd cgroup cpu.idle=%s: %w", v, err)
	}
	return nil
}
