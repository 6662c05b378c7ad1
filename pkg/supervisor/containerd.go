package supervisor

import (
	"context"
	"errors"
	"fmt"
	"github.com/keel-os/keel/pkg/goroutine"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
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
// Reaper), restarts it when it dies, and hands out a client connected to
// it. Services keep running across a restart: their shims outlive the
// daemon, and the service loops re-attach to their tasks.
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

	mu       sync.Mutex
	client   *containerd.Client
	pid      int
	gen      chan struct{} // closed and replaced whenever the client changes
	stopping bool
	exited   <-chan Exit
	done     chan struct{} // closed when the supervision loop ends
	stop     chan struct{} // closed by Stop
	restarts int
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

// ContainerdConfig is the TOML keel gives containerd. Version 3 matters:
// with an older version the grpc address setting is silently ignored.
// Plugins a VM with no Kubernetes and no images never uses are disabled,
// which makes the daemon start faster and smaller.
func ContainerdConfig(root, state, address string) string {
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
	} {
		fmt.Fprintf(&b, "  %s,\n", q(p))
	}
	b.WriteString("]\n\n[grpc]\n")
	fmt.Fprintf(&b, "  address = %s\n", q(address))
	b.WriteString("\n[ttrpc]\n")
	fmt.Fprintf(&b, "  address = %s\n", q(address+".ttrpc"))
	return b.String()
}

// Start writes the config, starts containerd and waits until its API
// answers. Afterwards containerd is watched and restarted if it dies,
// until Stop.
func (c *Containerd) Start(ctx context.Context) error {
	c.defaults()
	for _, d := range []string{filepath.Dir(c.Config), filepath.Dir(c.LogPath), filepath.Dir(c.Address), c.Root, c.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	if err := os.WriteFile(c.Config, []byte(ContainerdConfig(c.Root, c.State, c.Address)), 0o644); err != nil {
		return fmt.Errorf("containerd: write config: %w", err)
	}
	c.mu.Lock()
	c.gen = make(chan struct{})
	c.done = make(chan struct{})
	c.stop = make(chan struct{})
	c.mu.Unlock()
	if err := c.startOnce(ctx); err != nil {
		close(c.done)
		return err
	}
	goroutine.Go(c.Log, "containerd", false, c.supervise)
	return nil
}

// startOnce starts the daemon and connects to it.
func (c *Containerd) startOnce(ctx context.Context) error {
	start := time.Now()
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("containerd: open log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	// A socket left by a daemon that died would make the client think it
	// is up; containerd removes it too, but the wait below must not race.
	_ = os.Remove(c.Address)
	cmd := exec.Command(c.Binary, "--config", c.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = c.Env
	// Its own process group: a ctrl-c on the console is not for it.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	exited, err := c.Reaper.Start(cmd)
	if err != nil {
		return fmt.Errorf("containerd: start %s: %w", c.Binary, err)
	}
	client, err := c.connect(ctx, exited)
	if err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	c.mu.Lock()
	old := c.client
	c.client, c.pid, c.exited = client, cmd.Process.Pid, exited
	close(c.gen)
	c.gen = make(chan struct{})
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	c.Log.Info("containerd ready", "pid", cmd.Process.Pid, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// connect waits until the daemon's API answers, it exits or the ready
// timeout passes.
func (c *Containerd) connect(ctx context.Context, exited <-chan Exit) (*containerd.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Ready)
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
			return nil, fmt.Errorf("containerd exited before it was ready (exit %v); see %s", e, c.LogPath)
		case <-ctx.Done():
			return nil, fmt.Errorf("containerd not ready after %v: %w", c.Ready, errors.Join(ctx.Err(), lastErr))
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// supervise restarts containerd whenever it dies, with backoff, until Stop.
func (c *Containerd) supervise() {
	defer close(c.done)
	bo := Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Reset: time.Minute}
	for {
		c.mu.Lock()
		exited := c.exited
		c.mu.Unlock()
		startedAt := time.Now()
		e := <-exited
		c.mu.Lock()
		stopping := c.stopping
		c.pid = 0
		c.mu.Unlock()
		if stopping {
			c.Log.Info("containerd stopped", "exit", e)
			return
		}
		delay := bo.Next(time.Since(startedAt))
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
		c.Log.Warn("containerd died, restarting", "exit", e, "delay", delay.Round(time.Millisecond))
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(delay):
			}
			err := c.startOnce(context.Background())
			if err == nil {
				c.mu.Lock()
				if c.stopping && c.pid > 0 {
					_ = unix.Kill(c.pid, unix.SIGTERM) // Stop came during the restart
				}
				c.mu.Unlock()
				break
			}
			delay = bo.Next(0)
			c.Log.Error("containerd restart failed", "err", err, "retry", delay.Round(time.Millisecond))
		}
	}
}

// Client returns the current client and a channel closed when it is
// replaced (containerd restarted). It is nil before Start succeeds.
func (c *Containerd) Client() (*containerd.Client, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client, c.gen
}

// Pid is the daemon's pid, 0 while it is not running.
func (c *Containerd) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// Restarts is how many times containerd died and was restarted.
func (c *Containerd) Restarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// Stop stops supervising containerd and stops it: SIGTERM, then SIGKILL
// once ctx is done. It returns when the daemon is gone.
func (c *Containerd) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.done == nil {
		c.mu.Unlock()
		return nil
	}
	if !c.stopping {
		close(c.stop)
	}
	c.stopping = true
	pid, client := c.pid, c.client
	c.mu.Unlock()
	if client != nil {
		_ = client.Close()
	}
	if pid > 0 {
		_ = unix.Kill(pid, unix.SIGTERM)
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	pid = c.pid
	c.mu.Unlock()
	if pid > 0 {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	select {
	case <-c.done:
		return fmt.Errorf("containerd: killed after %w", ctx.Err())
	case <-time.After(2 * time.Second):
		return errors.New("containerd: still running after SIGKILL")
	}
}
