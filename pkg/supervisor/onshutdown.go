package supervisor

import (
	"context"
	"log/slog"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
)

// DefaultOnshutdownTimeout is how long one onshutdown bundle may run
// before it is killed, when its runtime.json gives no timeout.
const DefaultOnshutdownTimeout = 30 * time.Second

// Onshutdown runs the onshutdown bundles at the start of a shutdown, in
// order, each to completion or until its timeout, with the onboot runner
// (so with the same preparation, console lines and log files).
type Onshutdown struct {
	Runner *Onboot
	Root   string // where /containers is, normally "/"
	Log    *slog.Logger
}

// Run runs them all; ctx bounds the whole. Failures are logged: a
// shutdown goes on whatever they do.
func (o *Onshutdown) Run(ctx context.Context) {
	bundles, err := bundle.List(o.Root, bundle.Onshutdown)
	if err != nil {
		o.Log.Warn("onshutdown", "err", err)
		return
	}
	runner := *o.Runner
	if runner.Timeout == 0 {
		runner.Timeout = DefaultOnshutdownTimeout
	}
	for i, b := range bundles {
		if ctx.Err() != nil {
			o.Log.Warn("onshutdown: out of time", "skipped", len(bundles)-i)
			return
		}
		runner.Run(ctx, b)
	}
}
