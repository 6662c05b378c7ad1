package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"

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

// Libcontainer runs bundles to completion with libcontainer, the library
// under runc, in-process: no runc binary is needed in the image. Every
// start goes through the Reaper.
type Libcontainer struct {
	Reaper *Reaper
	// StateDir holds libcontainer's per-container state, e.g. /run/keel/containers.
	StateDir string
	Log      *slog.Logger // may be nil
}

func (r *Libcontainer) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Runner is the Runner of the prepared bundle p as container id, its
// stdout and stderr copied to the given writers. The two copies run
// concurrently: a writer shared by both must be safe for that, and a
// writer that blocks holds up the container.
func (r *Libcontainer) Runner(id string, p *Prepared, stdout, stderr io.Writer) Runner {
	return &containerRunner{lc: r, id: id, p: p, stdout: stdout, stderr: stderr}
}

type containerRunner struct {
	lc             *Libcontainer
	id             string
	p              *Prepared
	stdout, stderr io.Writer
}

// Start creates the container and starts its process. With runtime.json
// interfaces or bindNS it does so in two halves: libcontainer's Start
// makes the first process, with its namespaces, and leaves it waiting;
// Prepared.BeforeRun gets its pid; then Exec lets it run the program.
func (c *containerRunner) Start(ctx context.Context) (Process, error) {
	r, id, spec := c.lc, c.id, c.p.Spec
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: id,
		Spec:       spec, // its root is absolute (Prepare)
	})
	if err != nil {
		return nil, fmt.Errorf("container %s: convert spec: %w", id, err)
	}
	process, err := newProcess(spec.Process)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	container, err := libcontainer.Create(r.StateDir, id, config)
	if err != nil {
		return nil, fmt.Errorf("container %s: create: %w", id, err)
	}
	p := &containerProcess{lc: r, id: id, container: container, process: process}
	outR, outW, err := os.Pipe()
	if err != nil {
		p.destroy()
		return nil, fmt.Errorf("container %s: stdout pipe: %w", id, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		p.destroy()
		return nil, fmt.Errorf("container %s: stderr pipe: %w", id, err)
	}
	// Passing *os.File makes libcontainer hand the pipes straight to the
	// container instead of copying through goroutines of its own.
	process.Stdout, process.Stderr = outW, errW
	p.pipes = []*os.File{outR, errR}
	p.copies.Add(2)
	goroutine.Go(r.log(), "output "+id, false, func() { copyOutput(&p.copies, c.stdout, outR) })
	goroutine.Go(r.log(), "output "+id, false, func() { copyOutput(&p.copies, c.stderr, errR) })

	before := c.p.NeedsBeforeRun()
	p.exited, err = r.Reaper.Spawn(func() (int, error) {
		start := container.Run
		if before {
			start = container.Start
		}
		if err := start(process); err != nil {
			return 0, err
		}
		return process.Pid()
	})
	if err == nil && before {
		err = p.beforeRun(c.p)
	}
	// Our copies of the write ends must go, or the readers never see EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		p.release()
		return nil, fmt.Errorf("container %s: start: %w", id, err)
	}
	p.pid, _ = process.Pid()
	r.log().Debug("container started", "container", id, "pid", p.pid)
	return p, nil
}

// containerProcess is a started libcontainer container.
type containerProcess struct {
	lc        *Libcontainer
	id        string
	container *libcontainer.Container
	process   *libcontainer.Process
	pid       int
	exited    <-chan Exit
	pipes     []*os.File
	copies    sync.WaitGroup
	once      sync.Once
	code      int
}

func (p *containerProcess) Pid() int { return p.pid }

// Signal signals the container's first process; SIGKILL goes to every
// process of the container (libcontainer's Signal does that when the
// container shares the host's pid namespace, where the first process's
// death would not take the others with it).
func (p *containerProcess) Signal(sig unix.Signal) error {
	if sig == unix.SIGKILL {
		// It may wait for processes of its own: reaping holds off.
		return p.lc.Reaper.Hold(func() error { return p.container.Signal(sig) })
	}
	return p.process.Signal(sig)
}

// Wait waits for the first process to exit, drains its output and
// destroys the container.
func (p *containerProcess) Wait() int {
	p.once.Do(func() {
		exit := <-p.exited
		p.code = exit.Code()
		p.release()
	})
	return p.code
}

// beforeRun runs the bundle's BeforeRun on the first process, then lets it
// exec the container's program. On failure the process is killed and its
// exit collected.
func (p *containerProcess) beforeRun(pr *Prepared) error {
	pid, err := p.process.Pid()
	if err == nil {
		err = pr.BeforeRun(pid)
		if err == nil {
			if err = p.container.Exec(); err == nil {
				return nil
			}
			err = fmt.Errorf("exec: %w", err)
		}
	}
	_ = p.process.Signal(unix.SIGKILL)
	<-p.exited
	return err
}

// release drains and closes the output pipes (a process left behind may
// hold them open for ever: outputDrain bounds the wait), releases what
// libcontainer holds for the process and destroys the container.
func (p *containerProcess) release() {
	closeAfter(&p.copies, outputDrain, p.pipes...)
	// The reaper already collected the status; Wait only releases what
	// libcontainer holds, and its "no child" error is expected.
	_, _ = p.process.Wait()
	p.destroy()
}

func (p *containerProcess) destroy() {
	// Destroy may signal and wait for what is left of the container, so
	// the reaper must hold off meanwhile.
	if err := p.lc.Reaper.Hold(p.container.Destroy); err != nil {
		p.lc.log().Warn("destroy container failed", "container", p.id, "err", err)
	}
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
	goroutine.Go(nil, "output drain", false, func() { wg.Wait(); close(done) })
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
