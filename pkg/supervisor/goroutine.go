package supervisor

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Go runs fn in a goroutine that cannot take PID 1 down: a panic in a
// goroutine kills the whole process, and PID 1 exiting panics the kernel.
// The panic is logged and, when restart is set, fn runs again after a
// pause (for loops that must always run, like the reaper).
func Go(log *slog.Logger, name string, restart bool, fn func()) {
	go func() {
		for {
			if !runRecovered(log, name, fn) || !restart {
				return
			}
			time.Sleep(time.Second)
			log.Warn("restarting after panic", "goroutine", name)
		}
	}()
}

// runRecovered runs fn and reports whether it panicked.
func runRecovered(log *slog.Logger, name string, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			log.Error("panic", "goroutine", name, "err", fmt.Sprint(r))
			log.Debug("panic stack", "goroutine", name, "stack", string(debug.Stack()))
		}
	}()
	fn()
	return false
}
