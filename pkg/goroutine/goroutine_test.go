package goroutine

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGoRecoversAndRestarts(t *testing.T) {
	var runs atomic.Int32
	done := make(chan struct{})
	before := Panics()
	Go(slog.New(slog.DiscardHandler), "test", true, func() {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		close(done)
	})
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("goroutine was not restarted after its panic")
	}
	if Panics() != before+1 {
		t.Fatalf("Panics() = %d, want %d", Panics(), before+1)
	}
}

func TestRunLogsThePanic(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if !Run(log, "worker", func() { panic("kaput") }) {
		t.Fatal("Run did not report the panic")
	}
	if !strings.Contains(buf.String(), "goroutine=worker") || !strings.Contains(buf.String(), "kaput") {
		t.Fatalf("log does not name the goroutine and the panic: %q", buf.String())
	}
	if Run(nil, "quiet", func() {}) {
		t.Fatal("Run reported a panic for a function that returned")
	}
}
