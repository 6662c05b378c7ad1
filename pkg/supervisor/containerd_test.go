package supervisor

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A containerd that cannot start (here: one that exits at once, as it does
// when its socket path is taken) is started again and again with backoff,
// each failure logged with the delay, until the start is given up.
func TestContainerdFirstStartRetried(t *testing.T) {
	dir := t.TempDir()
	var logged syncBuffer
	c := &Containerd{
		Reaper:  startReaper(t),
		Log:     slog.New(slog.NewTextHandler(&logged, nil)),
		Binary:  "/bin/false",
		Address: filepath.Join(dir, "containerd.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Config:  filepath.Join(dir, "config.toml"),
		LogPath: filepath.Join(dir, "containerd.log"),
		Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Reset: time.Hour},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for strings.Count(logged.String(), "containerd start failed, retrying") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 retries logged in a minute:\n%s", logged.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Start of a containerd that never answers returned no error")
		}
	case <-time.After(time.Minute):
		t.Fatal("Start did not return once its context ended")
	}
	if st := c.Status(); st.Restarts < 2 {
		t.Errorf("status %+v, want 2 restarts at least", st)
	}
	if !strings.Contains(logged.String(), "exited before it was ready") {
		t.Errorf("the failures do not say why:\n%s", logged.String())
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
