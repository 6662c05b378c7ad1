package supervisor

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestGoRecoversAndRestarts(t *testing.T) {
	var runs atomic.Int32
	done := make(chan struct{})
	Go(slog.New(slog.DiscardHandler), "test", true, func() {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		close(done)
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("goroutine was not restarted after its panic")
	}
}
