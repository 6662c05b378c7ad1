package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/keel-os/keel/pkg/goroutine"
	"github.com/keel-os/keel/pkg/logfile"
	"golang.org/x/sys/unix"
)

// Containerd paths used in the booted system: the default socket, so that a
// plain `ctr` finds it.
const (
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	DefaultContainerdRoot    = "/var/lib/containerd"
	DefaultContainerdState   = "/run/containerd"
	DefaultContainerdConfig  = "/run/keel/containerd.toml"
	DefaultContainerdLog     = "/var/log/containerd.log"
)

// Containerd runs containerd as a child of PID 1 (started through the
// Reaper), supervised by a Unit like every service: its first start is
// retried with backoff like any later one, and it is restarted when it
// dies. It hands out a client connected to the running daemon. Services
// keep running across a restart: their shims outlive the daemon, and the
// services re-attach to their tasks.
type Containerd struct {
	Reaper *Reaper
	Log    *slog.Logger
	// Binary is the containerd executable; "containerd" (from PATH) if empty.
	Binary string
	// Address, Root, State, Config and LogPath default to the Default*
	// constants above.
	Address, Root, State, Config, LogPath string
	// Env is the daemon's environment (and so its shims' and runc's);
	// os.Environ() if nil.
	Env []string
	// Ready is how long one start may take to answer; 30s if 0.
	Ready time.Duration
	// Backoff spaces the restarts; 0.5 s doubling to 30 s if zero.
	Backoff Backoff
	// Cgroup, when set, is the cgroup v2 directory containerd is started
	// in (below CgroupRoot, /sys/fs/cgroup if empty), so that Idle works.
	Cgroup, CgroupRoot string

	mu     sync.Mutex
	client *containerd.Client
	gen    chan struct{} // closed and replaced whenever the client changes
	unit   *Unit
	ready  chan struct{} // closed at the first successful start
	log    *logfile.File
	// stopped is set by Stop: a Start racing a shutdown starts nothing.
	stopped bool
	idle    bool // containerd yields the CPU (Idle)
}

// Idle makes containerd, and the shims it starts, yield the CPU to every
// other process (on), or stop yielding. Set before Start, it holds from the
// daemon's first instruction. Without a Cgroup it does nothing; a kernel
// without cgroup cpu.idle makes it a warning.
func (c *Containerd) Idle(on bool) {
	// Under mu, as start's write is: the last said is the one in force.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = on
	if c.Cgroup == "" {
		return
	}
	if _, err := os.Stat(c.Cgroup); err != nil {
		return // not made yet: start sets it
	}
	if err := (containerdCgroup{dir: c.Cgroup}).idle(on); err != nil {
		c.Log.Warn("containerd", "err", err)
	}
}

func (c *Containerd) defaults() {
	if c.Binary == "" {
		c.Binary = "containerd"
	}
	if c.Address == "" {
		c.Address = DefaultContainerdAddress
	}
	if c.Root == "" {
		c.Root = DefaultContainerdRoot
	}
	if c.State == "" {
		c.State = DefaultContainerdState
	}
	if c.Config == "" {
		c.Config = DefaultContainerdConfig
	}
	if c.LogPath == "" {
		c.LogPath = DefaultContainerdLog
	}
	if c.Ready == 0 {
		c.Ready = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// containerdConfig is the TOML keel gives containerd. Version 3 matters:
// with an older version the grpc address setting is silently ignored.
// Plugins a VM with no Kubernetes and no images never uses are disabled,
// which makes the daemon start faster and smaller. So are the gRPC
// metrics: keel gives containerd no metrics address, so what they count
// is never read, and the prometheus one made a series for every method of
// every service at start (containerd ready 0.49 -> 0.38 s under TCG,
// medians of 8 boots).
func containerdConfig(root, state, address string) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("# Written by keel's PID 1 at boot.\nversion = 3\n")
	fmt.Fprintf(&b, "root = %s\nstate = %s\n", q(root), q(state))
	b.WriteString("disabled_plugins = [\n")
	for _, p := range []string{
		"io.containerd.grpc.v1.cri",
		"io.containerd.cri.v1.images",
		"io.containerd.cri.v1.runtime",
		"io.containerd.podsandbox.controller.v1.podsandbox",
		"io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.zfs",
		"io.containerd.snapshotter.v1.devmapper",
		"io.containerd.snapshotter.v1.blockfile",
		"io.containerd.snapshotter.v1.erofs",
		"io.containerd.tracing.processor.v1.otlp",
		"io.containerd.internal.v1.tracing",
		"io.containerd.metrics.v1.grpc-prometheus",
		"io.containerd.metrics.v1.grpc-otel",
	} {
		fmt.Fprintf(&b, "  %s,\n", q(p))
	}
	b.WriteString("]\n\n[grpc]\n")
	fmt.Fprintf(&b, "  address = %s\n", q(address))
	b.WriteString("\n[ttrpc]\n")
	fmt.Fprintf(&b, "  address = %s\n", q(address+".ttrpc"))
	return b.String()
}

// Start writes the config, starts containerd and returns once its API
// answers. A start that fails is retried with backoff until ctx is done
// (a shutdown), which Start then returns. containerd is supervised and
// restarted until Stop.
func (c *Containerd) Start(ctx context.Context) error {
	c.defaults()
	for _, d := range []string{filepath.Dir(c.Config), filepath.Dir(c.LogPath), filepath.Dir(c.Address), c.Root, c.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	if err := os.WriteFile(c.Config, []byte(containerdConfig(c.Root, c.State, c.Address)), 0o644); err != nil {
		return fmt.Errorf("containerd: write config: %w", err)
	}
	lf, err := logfile.Open(c.LogPath, 0)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	bo := c.Backoff
	if bo.Initial == 0 {
		bo = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Reset: time.Minute}
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		lf.Close()
		return errors.New("containerd: not started: stopping")
	}
	c.log = lf
	c.gen = make(chan struct{})
	c.ready = make(chan struct{})
	ready := c.ready
	var once sync.Once
	c.unit = &Unit{Name: "containerd", Runner: RunnerFunc(c.start), Policy: Always, RetryStart: true,
		Grace: ContainerdStopGrace, Backoff: bo, Log: c.Log, Quiet: true,
		OnStart: func(Process) { once.Do(func() { close(ready) }) }}
	u := c.unit
	c.mu.Unlock()
	goroutine.Go(c.Log, "containerd", false, func() {
		u.Run(context.Background())
		lf.Close()
	})
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		_ = u.Stop(context.Background())
		return fmt.Errorf("containerd: not started: %w", ctx.Err())
	}
}

// start is the Runner of containerd's Unit: it starts the daemon and connects to it.
func (c *Containerd) start(ctx context.Context) (Process, error) {
	start := time.Now()
	// A socket left by a daemon that died would make the client think it
	// is up; containerd removes it too, but the wait below must not race.
	_ = os.Remove(c.Address)
	cmd := exec.Command(c.Binary, "--config", c.Config)
	// Through a pipe into a log that rotates itself and never blocks the
	// daemon; shims that inherit the pipe must not hold up Wait.
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.WaitDelay = time.Second
	cmd.Env = c.Env
	// Its own process group: a ctrl-c on the console is not for it.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if c.Cgroup != "" {
		cg, err := c.cgroup()
		if err != nil {
			c.Log.Warn("containerd: started outside its cgroup", "err", err)
		} else {
			defer cg.Close()
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = int(cg.Fd())
		}
	}
	exited, err := c.Reaper.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Binary, err)
	}
	p := &daemonProcess{cmd: cmd, exited: exited}
	client, err := c.connect(ctx, exited)
	if err != nil {
		var early *exitedEarly
		if errors.As(err, &early) {
			_ = cmd.Wait() // its status is in the error, taken from exited
		} else {
			_ = cmd.Process.Kill()
			p.Wait()
		}
		return nil, err
	}
	c.mu.Lock()
	old := c.client
	c.client = client
	close(c.gen)
	c.gen = make(chan struct{})
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	c.Log.Info("containerd ready", "pid", cmd.Process.Pid, "duration", time.Since(start).Round(time.Millisecond))
	return p, nil
}

// cgroup makes containerd's cgroup, with cpu.idle as Idle last said, and
// opens it.
func (c *Containerd) cgroup() (*os.File, error) {
	root := c.CgroupRoot
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	g := containerdCgroup{dir: c.Cgroup}
	f, err := g.open(root)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := g.idle(c.idle); err != nil && c.idle {
		c.Log.Warn("containerd", "err", err)
	}
	return f, nil
}

// daemonProcess is the running containerd.
type daemonProcess struct {
	cmd    *exec.Cmd
	exited <-chan Exit
	once   sync.Once
	code   int
}

func (p *daemonProcess) Pid() int                     { return p.cmd.Process.Pid }
func (p *daemonProcess) Signal(sig unix.Signal) error { return unix.Kill(p.cmd.Process.Pid, sig) }

func (p *daemonProcess) Wait() int {
	p.once.Do(func() {
		e := <-p.exited
		_ = p.cmd.Wait() // flushes the output; the status is the reaper's
		p.code = e.Code()
	})
	return p.code
}

// connect waits until the daemon's API answers, it exits, the ready
// timeout passes or ctx (a stop) is done.
func (c *Containerd) connect(stop context.Context, exited <-chan Exit) (*containerd.Client, error) {
	ctx, cancel := context.WithTimeout(stop, c.Ready)
	defer cancel()
	delay := 5 * time.Millisecond
	var lastErr error
	for {
		if _, err := os.Stat(c.Address); err == nil {
			client, err := containerd.New(c.Address, containerd.WithTimeout(time.Second))
			if err == nil {
				vctx, vcancel := context.WithTimeout(ctx, time.Second)
				_, err = client.Version(vctx)
				vcancel()
				if err == nil {
					return client, nil
				}
				client.Close()
			}
			lastErr = err
		}
		select {
		case e := <-exited:
			return nil, &exitedEarly{exit: e, log: c.LogPath}
		case <-ctx.Done():
			if stop.Err() != nil {
				return nil, fmt.Errorf("containerd start given up: %w", stop.Err())
			}
			return nil, fmt.Errorf("containerd not ready after %v: %w", c.Ready, errors.Join(ctx.Err(), lastErr))
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// Client returns the current client and a channel closed when it is
// replaced (containerd restarted). It is nil before Start succeeds.
func (c *Containerd) Client() (*containerd.Client, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client, c.gen
}

// Status is the daemon's unit status: pid, restarts, state.
func (c *Containerd) Status() UnitStatus {
	c.mu.Lock()
	u := c.unit
	c.mu.Unlock()
	if u == nil {
		return UnitStatus{Name: "containerd", State: StateWaiting}
	}
	return u.Status()
}

// Stop stops containerd: SIGTERM, then SIGKILL once its grace period
// (ContainerdStopGrace) passes or ctx is done. It returns when the daemon
// is gone.
func (c *Containerd) Stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopped = true
	u, client := c.unit, c.client
	c.mu.Unlock()
	if u == nil {
		return nil
	}
	if client != nil {
		_ = client.Close()
	}
	if err := u.Stop(ctx); err != nil {
		return err
	}
	c.Log.Info("containerd stopped", "exit", exitString(u.Status().LastExit))
	return nil
}

// exitedEarly is a daemon that exited before it answered; its exit status
// has been taken from the reaper's channel.
type exitedEarly struct {
	exit Exit
	log  string
}

func (e *exitedEarly) Error() string {
	return fmt.Sprintf("containerd exited before it was ready (exit %v); see %s", e.exit, e.log)
}
