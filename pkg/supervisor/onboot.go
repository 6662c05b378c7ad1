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
	"github.com/keel-os/keel/pkg/bootreport"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
)

// Onboot runs the onboot bundles one after another, each to completion,
// before anything else starts. A failing bundle is logged and the next one
// runs, unless its runtime.json says onFailure: halt; then RunAll stops
// there and the machine is to halt (see Fatal). The onshutdown bundles are
// run the same way.
type Onboot struct {
	Runner  *ContainerRunner
	Mounts  *mount.Table
	Console *bootlog.Console
	Log     *slog.Logger
	// LogDir receives onboot.<name>.log (onshutdown.<name>.log), a copy of
	// each bundle's output.
	LogDir string
	// CgroupRoot is where runtime.json cgroups are made; /sys/fs/cgroup
	// if empty.
	CgroupRoot string
	// OverlayDir holds the writable layers of rootfs overlays
	// (runtime.json rootfsLower); DefaultOverlayDir if empty.
	OverlayDir string
}

// Result is how one onboot bundle went.
type Result struct {
	Bundle   bundle.Bundle
	Exit     Exit
	Duration time.Duration
	// Err is set when keel could not run the bundle at all.
	Err error
	// Halt is set when the bundle failed and its runtime.json says
	// onFailure: halt.
	Halt bool
}

// Failed reports whether the bundle did not run or exited non-zero.
func (r Result) Failed() bool { return r.Err != nil || !r.Exit.Success() }

// RunAll runs bundles in order and logs "onboot done" after the last. It
// stops early when ctx is done (the machine is shutting down) or when a
// bundle whose failure halts the machine fails. Each finished bundle and
// the end are marked in the boot report.
func (o *Onboot) RunAll(ctx context.Context, bundles []bundle.Bundle) []Result {
	var results []Result
	failed := 0
	for _, b := range bundles {
		if ctx.Err() != nil {
			o.Log.Warn("onboot interrupted", "remaining", len(bundles)-len(results))
			return results
		}
		r := o.Run(ctx, b)
		bootreport.Mark(string(b.Kind) + " " + b.Name)
		results = append(results, r)
		if r.Failed() {
			failed++
		}
		if r.Halt {
			o.Log.Error("onboot "+b.Name+" failed and its onFailure is halt: halting", "exit", r.Exit, "remaining", len(bundles)-len(results))
			return results
		}
	}
	if failed > 0 {
		o.Log.Info("onboot done", "count", len(results), "failed", failed)
	} else {
		o.Log.Info("onboot done", "count", len(results))
	}
	bootreport.Mark("onboot done")
	return results
}

// Fatal returns the result that halts the machine, if any.
func Fatal(results []Result) (Result, bool) {
	for _, r := range results {
		if r.Halt {
			return r, true
		}
	}
	return Result{}, false
}

// Run runs one bundle and logs its result line,
// "onboot 000-name exit=0 duration=120ms" ("onshutdown ..." for those).
func (o *Onboot) Run(ctx context.Context, b bundle.Bundle) Result {
	start := time.Now()
	exit, halt, err := o.run(ctx, b)
	r := Result{Bundle: b, Exit: exit, Duration: time.Since(start), Err: err}
	r.Halt = halt && r.Failed()
	msg := kindName(b) + " " + b.Name
	if err != nil {
		o.Log.Error(msg+" failed", "err", err)
	} else {
		o.Log.Info(msg, "exit", exit, "duration", r.Duration.Round(time.Millisecond))
	}
	return r
}

func kindName(b bundle.Bundle) string {
	if b.Kind == "" {
		return string(bundle.Onboot)
	}
	return string(b.Kind)
}

func (o *Onboot) run(ctx context.Context, b bundle.Bundle) (exit Exit, halt bool, err error) {
	spec, err := bundle.ReadConfig(b.ConfigPath())
	if err != nil {
		return Exit{}, false, err
	}
	if spec.Root == nil {
		return Exit{}, false, fmt.Errorf("%s: spec has no root", b.ConfigPath())
	}
	rt, err := bundle.ReadRuntime(b.RuntimePath())
	if err != nil {
		return Exit{}, false, err
	}
	halt = rt.OnFailure == bundle.OnFailureHalt
	rootfs := inBundle(b, spec.Root.Path)
	if err := mountSharedRoot(o.Mounts, o.OverlayDir, b, rt, rootfs); err != nil {
		return Exit{}, halt, err
	}
	// Directories first, while the rootfs is still writable; mounts after
	// the rootfs bind mount, so that those inside it land on top of it
	// and are seen by the container.
	if err := makeRuntimeDirs(b, rt); err != nil {
		return Exit{}, halt, err
	}
	if err := o.Mounts.BindSelf(rootfs, spec.Root.Readonly); err != nil {
		return Exit{}, halt, fmt.Errorf("prepare rootfs: %w", err)
	}
	if err := mountRuntime(b, rt, o.Mounts); err != nil {
		return Exit{}, halt, err
	}
	if err := createRuntimeCgroups(o.CgroupRoot, rt); err != nil {
		return Exit{}, halt, err
	}
	var prepare func(pid int) error
	if len(rt.Interfaces) > 0 || rt.BindNS != (bundle.Namespaces{}) {
		prepare = func(pid int) error { return PrepareNamespaces(rt, pid, o.Mounts) }
	}

	logFile, err := o.openLog(b)
	if err != nil {
		return Exit{}, halt, err
	}
	defer logFile.Close()
	stdout := o.Console.LineWriter(b.Name)
	stderr := o.Console.LineWriter(b.Name)
	// Onboot and onshutdown bundles share NNN- names; their containers
	// must not.
	id := b.Name
	if b.Kind != "" && b.Kind != bundle.Onboot {
		id = string(b.Kind) + "-" + b.Name
	}
	exit, err = o.Runner.RunPrepared(ctx, id, spec, rootfs, io.MultiWriter(logFile, stdout), io.MultiWriter(logFile, stderr), prepare)
	stdout.Close()
	stderr.Close()
	return exit, halt, err
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
	path := filepath.Join(o.LogDir, kindName(b)+"."+b.Name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open onboot log: %w", err)
	}
	return f, nil
}
