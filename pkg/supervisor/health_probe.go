package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/goroutine"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// probeFor is the probe of a health check on a running service: its test
// run inside the container as `docker exec` would (through containerd's
// task Exec; the shim reaps it), or a TCP connection made from the
// container's network namespace, so the image needs no tools for it.
func probeFor(hc *HealthCheck, proc Process) (Probe, error) {
	switch hc.Test[0] {
	case bundle.HealthTCP:
		pid, addr := proc.Pid(), hc.Test[1]
		return func(ctx context.Context) (string, error) { return dialIn(ctx, pid, addr) }, nil
	case bundle.HealthCmd, bundle.HealthCmdShell:
		tp, ok := proc.(*taskProcess)
		if !ok {
			return nil, fmt.Errorf("health check %s needs a containerd task", hc.Test[0])
		}
		args := hc.Test[1:]
		if hc.Test[0] == bundle.HealthCmdShell {
			args = []string{"/bin/sh", "-c", hc.Test[1]}
		}
		return func(ctx context.Context) (string, error) { return tp.exec(ctx, args) }, nil
	}
	return nil, fmt.Errorf("health check: unknown test %q", hc.Test[0])
}

// dialIn connects to addr over TCP from the network namespace of pid.
func dialIn(ctx context.Context, pid int, addr string) (string, error) {
	type result struct {
		out string
		err error
	}
	res := make(chan result, 1)
	// A thread of its own: the namespace switch is the thread's, and a
	// thread that cannot switch back must never run anything else.
	goroutine.Go(nil, "health check tcp", false, func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("health check: own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPid(pid)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("health check: network namespace of pid %d: %w", pid, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("health check: enter the service's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread() // else the thread ends with this goroutine
		}
		if err != nil {
			res <- result{err: err}
			return
		}
		res <- result{out: "connected to " + addr}
	})
	select {
	case r := <-res:
		return r.out, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

var execSeq atomic.Uint64

// exec runs args in the task's container, as its process runs (user,
// environment, working directory), and returns its output. A run past
// ctx is killed.
func (p *taskProcess) exec(ctx context.Context, args []string) (string, error) {
	p.mu.Lock()
	task := p.task
	p.mu.Unlock()
	spec := *p.r.p.Spec.Process
	spec.Args = args
	spec.Terminal = false
	var out boundedBuffer
	id := fmt.Sprintf("health-%d", execSeq.Add(1))
	nsctx := p.ctx // the service's containerd namespace; ctx is the check's deadline
	proc, err := task.Exec(nsctx, id, &spec, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		return "", fmt.Errorf("exec: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(nsctx, 10*time.Second)
		defer cancel()
		_, _ = proc.Delete(dctx, containerd.WithProcessKill)
	}()
	statusC, err := proc.Wait(nsctx)
	if err == nil {
		err = proc.Start(nsctx)
	}
	if err != nil {
		return "", fmt.Errorf("exec: %w", err)
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		proc.IO().Wait() // the output is all there once the copies end
		if err != nil {
			return out.String(), err
		}
		if code != 0 {
			return out.String(), fmt.Errorf("exit %d", code)
		}
		return out.String(), nil
	case <-ctx.Done():
		_ = proc.Kill(nsctx, unix.SIGKILL)
		<-statusC
		return out.String(), fmt.Errorf("timed out: %w", ctx.Err())
	}
}

// boundedBuffer keeps the last maxHealthOutput bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > 4*maxHealthOutput {
		keep := b.buf.Bytes()[b.buf.Len()-maxHealthOutput:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
