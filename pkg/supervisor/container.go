package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	// Registers the device-rules manager (eBPF on cgroup v2); without it
	// libcontainer refuses to apply the spec's device cgroup.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// outputDrain is how long to keep reading a container's stdout and stderr
// after it exited: a process it left behind (outside its pid namespace, or
// one it passed its stdout to) may hold the pipe open forever.
const outputDrain = time.Second

// ContainerRunner runs OCI bundles to completion with libcontainer, the
// library under runc, in-process: no runc binary is needed in the image.
type ContainerRunner struct {
	Reaper *Reaper
	// StateDir holds libcontainer's per-container state, e.g. /run/keel/containers.
	StateDir string
	Log      *slog.Logger // may be nil
}

func (r *ContainerRunner) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Run creates the container id from spec with its root at rootfs (an
// absolute path), runs its process to completion with stdout and stderr
// copied to the given writers, and destroys it. The two copies run
// concurrently: a writer shared by both must be safe for that. The error
// is about keel failing to run the container; how its process ended is in
// the Exit. If ctx is done first, the process is killed.
func (r *ContainerRunner) Run(ctx context.Context, id string, spec *specs.Spec, rootfs string, stdout, stderr io.Writer) (Exit, error) {
	return r.RunPrepared(ctx, id, spec, rootfs, stdout, stderr, nil)
}

// RunPrepared is Run with a step between the two halves of the start:
// libcontainer's Start makes the container's first process, with its
// namespaces, and leaves it waiting; prepare gets its pid (to move
// interfaces into its network namespace, bind its namespaces); then Exec
// lets it run the container's program. If prepare fails, the process is
// killed and the error returned. A nil prepare is a plain Run.
func (r *ContainerRunner) RunPrepared(ctx context.Context, id string, spec *specs.Spec, rootfs string, stdout, stderr io.Writer, prepare func(pid int) error) (Exit, error) {
	if spec.Process == nil || spec.Root == nil {
		return Exit{}, fmt.Errorf("container %s: spec needs a process and a root", id)
	}
	if !filepath.IsAbs(rootfs) {
		return Exit{}, fmt.Errorf("container %s: rootfs %q is not absolute", id, rootfs)
	}
	// specconv resolves a relative root against the working directory;
	// PID 1's is "/", so give it the absolute path and leave the caller's
	// spec untouched.
	s := *spec
	root := *spec.Root
	root.Path = rootfs
	s.Root = &root

	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: id,
		Spec:       &s,
	})
	if err != nil {
		return Exit{}, fmt.Errorf("container %s: convert spec: %w", id, err)
	}
	process, err := newProcess(spec.Process)
	if err != nil {
		return Exit{}, fmt.Errorf("container %s: %w", id, err)
	}

	container, err := libcontainer.Create(r.StateDir, id, config)
	if err != nil {
		return Exit{}, fmt.Errorf("container %s: create: %w", id, err)
	}
	defer func() {
		// Destroy may signal and wait for what is left of the container,
		// so the reaper must hold off meanwhile.
		if err := r.Reaper.Hold(container.Destroy); err != nil {
			r.log().Warn("destroy container failed", "container", id, "err", err)
		}
	}()

	outR, outW, err := os.Pipe()
	if err != nil {
		return Exit{}, fmt.Errorf("container %s: stdout pipe: %w", id, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return Exit{}, fmt.Errorf("container %s: stderr pipe: %w", id, err)
	}
	// Passing *os.File makes libcontainer hand the pipes straight to the
	// container instead of copying through goroutines of its own.
	process.Stdout, process.Stderr = outW, errW

	var copies sync.WaitGroup
	copies.Add(2)
	go copyOutput(&copies, stdout, outR)
	go copyOutput(&copies, stderr, errR)

	r.log().Debug("container created", "container", id)
	exited, err := r.Reaper.Spawn(func() (int, error) {
		start := container.Run
		if prepare != nil {
			start = container.Start
		}
		if err := start(process); err != nil {
			return 0, err
		}
		return process.Pid()
	})
	if err == nil && prepare != nil {
		err = r.prepare(container, process, exited, prepare)
	}
	if err == nil {
		r.log().Debug("container started", "container", id)
	}
	// Our copies of the write ends must go, or the readers never see EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		closeAfter(&copies, outputDrain, outR, errR)
		return Exit{}, fmt.Errorf("container %s: start: %w", id, err)
	}

	var exit Exit
	select {
	case exit = <-exited:
	case <-ctx.Done():
		_ = process.Signal(unix.SIGKILL)
		exit = <-exited
	}
	closeAfter(&copies, outputDrain, outR, errR)
	// The reaper already collected the status; Wait only releases what
	// libcontainer holds for the process, and its "no child" error is
	// expected.
	_, _ = process.Wait()
	return exit, nil
}

// prepare runs prepare on a started container's first process, then lets
// it exec the container's program. On failure the process is killed and
// its exit collected.
func (r *ContainerRunner) prepare(container *libcontainer.Container, process *libcontainer.Process, exited <-chan Exit, prepare func(pid int) error) error {
	pid, err := process.Pid()
	if err == nil {
		err = prepare(pid)
		if err == nil {
			if err = container.Exec(); err == nil {
				return nil
			}
			err = fmt.Errorf("exec: %w", err)
		}
	}
	_ = process.Signal(unix.SIGKILL)
	<-exited
	_, _ = process.Wait()
	return err
}

// copyOutput copies a container's output until EOF or until the read end is
// closed under it.
func copyOutput(wg *sync.WaitGroup, w io.Writer, r *os.File) {
	defer wg.Done()
	_, _ = io.Copy(w, r)
}

// closeAfter waits up to d for the copies to reach EOF, then closes the read
// ends, which ends the copies.
func closeAfter(wg *sync.WaitGroup, d time.Duration, files ...*os.File) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
	for _, f := range files {
		_ = f.Close()
	}
	<-done
}

// newProcess is the container's first process as libcontainer wants it. The
// rest of spec.Process (capabilities, no_new_privs, ...) reaches
// libcontainer through the config made by specconv.
func newProcess(p *specs.Process) (*libcontainer.Process, error) {
	lp := &libcontainer.Process{
		Args: p.Args,
		Env:  p.Env,
		Cwd:  p.Cwd,
		UID:  int(p.User.UID),
		GID:  int(p.User.GID),
		Init: true,
	}
	for _, g := range p.User.AdditionalGids {
		lp.AdditionalGroups = append(lp.AdditionalGroups, int(g))
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimitResources[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		lp.Rlimits = append(lp.Rlimits, configs.Rlimit{Type: res, Hard: rl.Hard, Soft: rl.Soft})
	}
	return lp, nil
}

var rlimitResources = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}
