// Package goroutine starts PID 1's goroutines so that none can take it
// down: in Go a panic in any goroutine ends the whole process, and PID 1
// exiting panics the kernel. Every goroutine in PID 1, in every package,
// is started by Go.
package goroutine

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// panics counts every panic recovered in this process, for status and
// tests.
var panics atomic.Uint64

// Panics is how many panics Go and Recover have caught so far.
func Panics() uint64 { return panics.Load() }

// Go runs fn in a goroutine whose panic is logged instead of ending the
// process. When restart is set, fn runs again a second after a panic (for
// loops that must always run, like the reaper); a return ends it either
// way. log may be nil.
func Go(log *slog.Logger, name string, restart bool, fn func()) {
	go func() {
		for {
			if !Run(log, name, fn) || !restart {
				return
			}
			time.Sleep(time.Second)
			logger(log).Warn("restarting after panic", "goroutine", name)
		}
	}()
}

// Run runs fn in the calling goroutine and reports whether it panicked;
// the panic is logged, with its stack at debug level.
func Run(log *slog.Logger, name string, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			panics.Add(1)
			l := logger(log)
			l.Error("panic", "goroutine", name, "err", fmt.Sprint(r))
			l.Debug("panic stack", "goroutine", name, "stack", string(debug.Stack()))
		}
	}()
	fn()
	return false
}

func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
