package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/logfile"
)

// Onboot runs onboot (or onshutdown) bundles one after another, each to
// completion, through libcontainer. A failing bundle is logged and the
// next one runs, unless its runtime.json says onFailure: halt; then RunAll
// stops there and the machine is to halt (see Fatal).
type Onboot struct {
	Engine   *Libcontainer
	Preparer *Preparer
	Console  *bootlog.Console
	Log      *slog.Logger
	// LogDir receives onboot.<name>.log (onshutdown.<name>.log), a copy of
	// each bundle's output, rotated like the services' logs.
	LogDir string
	// Timeout bounds a bundle whose runtime.json gives no timeout; 0 is
	// no limit.
	Timeout time.Duration
	// Grace is a bundle's time between SIGTERM and SIGKILL when the
	// machine shuts down while it runs; DefaultOnbootGrace if 0.
	Grace time.Duration
	// Done, when set, is called as each bundle ends (the boot report).
	Done func(Result)
}

// DefaultOnbootGrace is how long an onboot container has to exit on
// SIGTERM when a shutdown interrupts it.
const DefaultOnbootGrace = 2 * time.Second

// Result is how one onboot bundle went.
type Result struct {
	Bundle bundle.Bundle
	// Code is the exit code (128+N for signal N), valid when Err is nil.
	Code     int
	Duration time.Duration
	// Err is set when keel could not run the bundle at all.
	Err error
	// TimedOut is set when it was killed at its time limit.
	TimedOut bool
	// Halt is set when the bundle failed and its runtime.json says
	// onFailure: halt.
	Halt bool
	// Interrupted is set when a shutdown stopped it.
	Interrupted bool
}

// Failed reports whether the bundle did not run, exited non-zero or timed
// out.
func (r Result) Failed() bool { return r.Err != nil || r.TimedOut || r.Code != 0 }

// RunAll runs bundles in order and logs "onboot done" after the last. It
// stops early when ctx is done (the machine is shutting down) or when a
// bundle whose failure halts the machine fails.
func (o *Onboot) RunAll(ctx context.Context, bundles []bundle.Bundle) []Result {
	var results []Result
	failed := 0
	for _, b := range bundles {
		if ctx.Err() != nil {
			o.Log.Warn("onboot interrupted", "remaining", len(bundles)-len(results))
			return results
		}
		r := o.Run(ctx, b)
		results = append(results, r)
		if r.Interrupted {
			// The last one may have asked for the shutdown itself
			// (poweroff): nothing was cut short then.
			if remaining := len(bundles) - len(results); remaining > 0 || r.Failed() {
				o.Log.Warn("onboot interrupted", "remaining", remaining)
			}
			return results
		}
		if r.Failed() {
			failed++
		}
		if r.Halt {
			o.Log.Error("onboot "+b.Name+" failed and its onFailure is halt: halting", "exit", exitString(r.Code), "remaining", len(bundles)-len(results))
			return results
		}
	}
	if failed > 0 {
		o.Log.Warn("onboot done", "count", len(results), "failed", failed)
	} else {
		o.Log.Info("onboot done", "count", len(results))
	}
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
// Ending ctx stops the container (SIGTERM, then SIGKILL after Grace).
func (o *Onboot) Run(ctx context.Context, b bundle.Bundle) Result {
	start := time.Now()
	r := o.run(ctx, b)
	r.Duration = time.Since(start)
	msg := kindName(b) + " " + b.Name
	switch {
	case r.Err != nil && !r.Interrupted:
		o.Log.Error(msg+" failed", "err", r.Err)
	case r.TimedOut:
		o.Log.Error(msg+" timed out", "exit", exitString(r.Code), "duration", r.Duration.Round(time.Millisecond))
	case r.Code != 0:
		o.Log.Warn(msg, "exit", exitString(r.Code), "duration", r.Duration.Round(time.Millisecond))
	default:
		o.Log.Info(msg, "exit", exitString(r.Code), "duration", r.Duration.Round(time.Millisecond))
	}
	if o.Done != nil {
		o.Done(r)
	}
	return r
}

func kindName(b bundle.Bundle) string {
	if b.Kind == "" {
		return string(bundle.Onboot)
	}
	return string(b.Kind)
}

func (o *Onboot) run(ctx context.Context, b bundle.Bundle) Result {
	r := Result{Bundle: b}
	p, err := o.Preparer.Prepare(b)
	if err != nil {
		r.Err = err
		return r
	}
	for _, w := range p.Warnings {
		o.Log.Warn(kindName(b)+" "+b.Name, "err", w)
	}
	r.Halt = p.Halts()
	logFile, err := o.openLog(b)
	if err != nil {
		// The console still shows the output.
		o.Log.Warn(kindName(b)+" "+b.Name+": no log file", "err", err)
	}
	stdout := o.Console.LineWriter(b.Name)
	stderr := o.Console.LineWriter(b.Name)
	var outW, errW io.Writer = stdout, stderr
	if logFile != nil {
		// Neither writer ever fails or blocks, so neither stops the other.
		outW, errW = io.MultiWriter(logFile, stdout), io.MultiWriter(logFile, stderr)
	}
	// Onboot and onshutdown bundles share NNN- names; their containers
	// must not.
	id := b.Name
	if b.Kind != "" && b.Kind != bundle.Onboot {
		id = string(b.Kind) + "-" + b.Name
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = o.Timeout
	}
	grace := o.Grace
	if grace == 0 {
		grace = DefaultOnbootGrace
	}
	u := &Unit{
		Name:    kindName(b) + " " + b.Name,
		Runner:  o.Engine.Runner(id, p, outW, errW),
		Policy:  Never,
		Grace:   grace,
		Timeout: timeout,
		Quiet:   true,
		Log:     o.Log,
	}
	out := u.Run(ctx)
	stdout.Close()
	stderr.Close()
	if logFile != nil {
		logFile.Close()
	}
	r.Code, r.Err, r.TimedOut, r.Interrupted = out.Code, out.Err, out.TimedOut, out.Stopped
	r.Halt = r.Halt && r.Failed() && !r.Interrupted
	return r
}

func (o *Onboot) openLog(b bundle.Bundle) (*logfile.File, error) {
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, err
	}
	return logfile.Open(filepath.Join(o.LogDir, kindName(b)+"."+b.Name+".log"), 0)
}
