package bootlog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// flush waits for the console's writer; the minute is a hang guard for a
// writer that never blocks.
func flush(t *testing.T, c *Console) {
	t.Helper()
	if !c.Flush(time.Minute) {
		t.Fatal("console not flushed within a minute")
	}
}

func fixedClock(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

func TestLineFormat(t *testing.T) {
	var buf bytes.Buffer
	c := NewWithClock(&buf, fixedClock(2512001*time.Microsecond))
	c.Line("000-hello", "hello from one\n")
	flush(t, c)
	if got, want := buf.String(), "[  2.512001] 000-hello: hello from one\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHandlerFormat(t *testing.T) {
	var buf bytes.Buffer
	c := NewWithClock(&buf, fixedClock(2104512*time.Microsecond))
	log := slog.New(c.Handler(slog.LevelInfo))

	log.Info("mounted filesystems")
	log.Info("onboot 000-hello", "exit", 0, "duration", 120*time.Millisecond)
	log.Info("onboot done", "count", 3)
	log.With("bundle", "001-x").Error("onboot failed", "err", errors.New("create container: no such file"))
	log.Warn("containerd died", "exit", 1)
	log.Log(context.Background(), slog.LevelError+4, "beyond error")
	log.Log(context.Background(), slog.LevelInfo+2, "between info and warn")
	log.WithGroup("g").Info("grouped", "k", "v")
	log.Debug("not shown")
	flush(t, c)

	want := "" +
		"[  2.104512] keel: mounted filesystems\n" +
		"[  2.104512] keel: onboot 000-hello exit=0 duration=120ms\n" +
		"[  2.104512] keel: onboot done count=3\n" +
		"[  2.104512] keel: ERROR onboot failed bundle=001-x err=\"create container: no such file\"\n" +
		"[  2.104512] keel: WARN containerd died exit=1\n" +
		"[  2.104512] keel: ERROR beyond error\n" +
		"[  2.104512] keel: between info and warn\n" +
		"[  2.104512] keel: grouped g.k=v\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// The harness parses the stamp with this expression; large uptimes must
// still match it.
func TestStampWidth(t *testing.T) {
	re := regexp.MustCompile(`^\[ *\d+\.\d{6}\] $`)
	for _, d := range []time.Duration{0, time.Microsecond, 3 * time.Second, 12345 * time.Second, 40000 * time.Hour} {
		s := string(AppendStamp(nil, d))
		if !re.MatchString(s) {
			t.Errorf("stamp %q for %v does not match %v", s, d, re)
		}
		if d < 1000*time.Second && len(s) != 13 {
			t.Errorf("stamp %q for %v is not 10 characters wide", s, d)
		}
	}
}

func TestMonotonicAdvances(t *testing.T) {
	a := Monotonic()
	time.Sleep(time.Millisecond)
	if b := Monotonic(); b <= a || a <= 0 {
		t.Fatalf("monotonic clock did not advance: %v then %v", a, b)
	}
}

func TestLineWriterSplitsAndFlushes(t *testing.T) {
	var buf bytes.Buffer
	c := NewWithClock(&buf, fixedClock(time.Second))
	w := c.LineWriter("000-hello")
	for _, s := range []string{"hel", "lo\nsec", "ond\r\n\n", "tail"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	flush(t, c)
	want := "" +
		"[  1.000000] 000-hello: hello\n" +
		"[  1.000000] 000-hello: second\n" +
		"[  1.000000] 000-hello: \n" +
		"[  1.000000] 000-hello: tail\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}
