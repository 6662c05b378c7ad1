package logfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines is a writer that collects what Follow writes and says when it
// grows.
type lines struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the output holds want whole lines; the deadline is
// a guard against a hang, not a measure.
func (l *lines) waitFor(t *testing.T, want int, done <-chan error) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for strings.Count(l.String(), "\n") < want {
		select {
		case <-l.changed:
		case err := <-done:
			t.Fatalf("Follow returned %v, with %d lines of %d:\n%s", err, strings.Count(l.String(), "\n"), want, l.String())
		case <-guard:
			t.Fatalf("hung: %d lines of %d:\n%s", strings.Count(l.String(), "\n"), want, l.String())
		}
	}
}

func setInterval(t *testing.T, d time.Duration) {
	old := followInterval
	followInterval = d
	t.Cleanup(func() { followInterval = old })
}

func TestFollowAcrossRotations(t *testing.T) {
	setInterval(t, time.Millisecond)
	path := filepath.Join(t.TempDir(), "svc.log")
	// 13 bytes a line, rotated past 64 bytes: a new file every 5 lines.
	log, err := Open(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var want []string
	line := 0
	write := func(k int) {
		for range k {
			s := fmt.Sprintf("line %07d\n", line)
			line++
			log.Write([]byte(s))
			want = append(want, s)
		}
	}
	write(8) // 5 in svc.log.1, 3 in svc.log
	want = want[4:]

	out := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, path, 4, out) }()
	out.waitFor(t, len(want), done)

	// Bursts of up to 9 lines (117 bytes) rotate the log at most twice
	// before Follow has caught up, which it must survive; some end in
	// the middle of a file, some on a rotation.
	for burst := range 60 {
		write(1 + burst%9)
		out.waitFor(t, len(want), done)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != strings.Join(want, "") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, ""))
	}
}

func TestFollowWholeLog(t *testing.T) {
	setInterval(t, time.Millisecond)
	path := filepath.Join(t.TempDir(), "svc.log")
	os.WriteFile(path+".1", []byte("a\nb"), 0o600) // no final newline
	os.WriteFile(path, []byte("c\n"), 0o600)
	out := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, path, 0, out) }()
	out.waitFor(t, 3, done)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("d\n")
	f.Close()
	out.waitFor(t, 4, done)
	// Truncated in place, as the log is when it cannot be moved.
	os.WriteFile(path, []byte("e\n"), 0o600)
	out.waitFor(t, 5, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "a\nb\nc\nd\ne\n" {
		t.Errorf("got %q", got)
	}
}

func TestFollowNoLog(t *testing.T) {
	err := Follow(context.Background(), filepath.Join(t.TempDir(), "none.log"), 10, newLines())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want not exist", err)
	}
}
