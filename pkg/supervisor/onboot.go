package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/keel-os/keel/pkg/oci/bundle"
)

// Onboot runs the onboot bundles one after another, each to completion,
// before anything else starts. A failing bundle is logged and the next one
// runs: what a failure should do is a policy for later.
type Onboot struct {
	Runner  *ContainerRunner
	Mounts  *mount.Table
	Console *bootlog.Console
	Log     *slog.Logger
	// LogDir receives onboot.<name>.log, a copy of each bundle's output.
	LogDir string
}

// Result is how one onboot bundle went.
type Result struct {
	Bundle   bundle.Bundle
	Exit     Exit
	Duration time.Duration
	// Err is set when keel could not run the bundle at all.
	Err error
}

// Failed reports whether the bundle did not run or exited non-zero.
func (r Result) Failed() bool { return r.Err != nil || !r.Exit.Success() }

// RunAll runs bundles in order and logs "onboot done" after the last. It
// stops early only when ctx is done (the machine is shutting down).
func (o *Onboot) RunAll(ctx context.Context, bundles []bundle.Bundle) []Result {
	var results []Result
	failed := 0
	for _, b := range bundles {
		if ctx.Err() != nil {
			o.Log.Warn("onboot interrupted", "remaining", len(bundles)-len(results))
			return results
		}
		r := o.Run(ctx, b)
		if r.Failed() {
			failed++
		}
		results = append(results, r)
	}
	if failed > 0 {
		o.Log.Info("onboot done", "count", len(results), "failed", failed)
	} else {
		o.Log.Info("onboot done", "count", len(results))
	}
	return results
}

// Run runs one bundle and logs its result line,
// "onboot 000-name exit=0 duration=120ms".
func (o *Onboot) Run(ctx context.Context, b bundle.Bundle) Result {
	start := time.Now()
	exit, err := o.run(ctx, b)
	r := Result{Bundle: b, Exit: exit, Duration: time.Since(start), Err: err}
	msg := "onboot " + b.Name
	if err != nil {
		o.Log.Error(msg+" failed", "err", err)
	} else {
		o.Log.Info(msg, "exit", exit, "duration", r.Duration.Round(time.Millisecond))
	}
	return r
}

func (o *Onboot) run(ctx context.Context, b bundle.Bundle) (Exit, error) {
	spec, err := bundle.ReadConfig(b.ConfigPath())
	if err != nil {
		return Exit{}, err
	}
	if spec.Root == nil {
		return Exit{}, fmt.Errorf("%s: spec has no root", b.ConfigPath())
	}
	rt, err := bundle.ReadRuntime(b.RuntimePath())
	if err != nil {
		return Exit{}, err
	}
	rootfs := inBundle(b, spec.Root.Path)
	// Directories first, while the rootfs is still writable; mounts after
	// the rootfs bind mount, so that those inside it land on top of it
	// and are seen by the container.
	for _, dir := range rt.Mkdir {
		if err := os.MkdirAll(inBundle(b, dir), 0o755); err != nil {
			return Exit{}, fmt.Errorf("runtime.json mkdir: %w", err)
		}
	}
	if err := o.Mounts.BindSelf(rootfs, spec.Root.Readonly); err != nil {
		return Exit{}, fmt.Errorf("prepare rootfs: %w", err)
	}
	for _, m := range rt.Mounts {
		if mount.IsBind(m) {
			m.Source = inBundle(b, m.Source)
		}
		m.Destination = inBundle(b, m.Destination)
		if err := o.Mounts.MountSpec(m); err != nil {
			return Exit{}, fmt.Errorf("runtime.json mount: %w", err)
		}
	}

	logFile, err := o.openLog(b)
	if err != nil {
		return Exit{}, err
	}
	defer logFile.Close()
	stdout := o.Console.LineWriter(b.Name)
	stderr := o.Console.LineWriter(b.Name)
	exit, err := o.Runner.Run(ctx, b.Name, spec, rootfs, io.MultiWriter(logFile, stdout), io.MultiWriter(logFile, stderr))
	stdout.Close()
	stderr.Close()
	return exit, err
}

// inBundle resolves a path from config.json or runtime.json: relative
// paths are relative to the bundle directory, as in LinuxKit.
func inBundle(b bundle.Bundle, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.Path, p)
}

func (o *Onboot) openLog(b bundle.Bundle) (*os.File, error) {
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	path := filepath.Join(o.LogDir, "onboot."+b.Name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open onboot log: %w", err)
	}
	return f, nil
}
