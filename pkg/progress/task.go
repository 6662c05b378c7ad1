package progress

import (
	"strings"
	"sync/atomic"
	"time"
)

// A Task is one line of the display: a pull, an output being written. Its
// counters are bytes; every method is safe for concurrent use, and cheap
// enough to call on every Read or Write (the display redraws on its own
// clock, not on updates).
type Task struct {
	d     *Display
	label string
	start time.Time

	// in counts bytes moved by this task (fetched, written), which the
	// rate is worked out from; skipped counts bytes that are done without
	// being moved (a cached layer); total is what in+skipped will reach,
	// 0 when unknown; out counts what in became (compressed bytes out).
	in, skipped, total, out atomic.Int64

	// note and ended are guarded by d.mu.
	note  string
	ended bool
}

// SetTotal says how many bytes the task will have done when it ends.
func (t *Task) SetTotal(n int64) {
	if t != nil {
		t.total.Store(n)
		t.d.touch()
	}
}

// Add counts n bytes moved.
func (t *Task) Add(n int64) {
	if t != nil {
		t.in.Add(n)
		t.d.touch()
	}
}

// Skip counts n bytes done without moving them, e.g. found in a cache.
func (t *Task) Skip(n int64) {
	if t != nil {
		t.skipped.Add(n)
		t.d.touch()
	}
}

// AddOut counts n bytes of output, e.g. compressed bytes written.
func (t *Task) AddOut(n int64) {
	if t != nil {
		t.out.Add(n)
		t.d.touch()
	}
}

// Note sets the text shown after the counters on the live line, e.g.
// "segment 2/5".
func (t *Task) Note(s string) {
	if t == nil {
		return
	}
	t.d.mu.Lock()
	t.note = s
	t.d.mu.Unlock()
	t.d.touch()
}

// End finishes the task: its live line goes and a summary line is left,
// ending in note when note is not empty. Only the first End or Abandon
// counts.
func (t *Task) End(note string) {
	if t != nil {
		t.d.end(t, note, true)
	}
}

// Abandon finishes the task without a summary, for a task that failed:
// its error says what happened.
func (t *Task) Abandon() {
	if t != nil {
		t.d.end(t, "", false)
	}
}

// live is the task's line while it runs:
//
//	pull alpine:3.20  12.3 MB / 45.6 MB  3.2 MB/s
func (t *Task) live(now time.Time) string {
	var b strings.Builder
	b.WriteString(t.label)
	b.WriteString("  ")
	done := t.in.Load() + t.skipped.Load()
	b.WriteString(Bytes(done))
	if total := t.total.Load(); total > 0 {
		b.WriteString(" / ")
		b.WriteString(Bytes(total))
	}
	t.appendOut(&b)
	if r := Rate(t.in.Load(), now.Sub(t.start)); r != "" {
		b.WriteString("  ")
		b.WriteString(r)
	}
	if t.note != "" {
		b.WriteString("  ")
		b.WriteString(t.note)
	}
	return b.String()
}

// summary is the line a task leaves when it ends: what it moved, how
// long it took and how fast it went.
//
//	pull alpine:3.20: 12.3 MB in 3.1s (4.0 MB/s), 2 of 4 layers cached
func (t *Task) summary(now time.Time, note string) string {
	var b strings.Builder
	b.WriteString(t.label)
	b.WriteString(": ")
	in := t.in.Load()
	b.WriteString(Bytes(in))
	t.appendOut(&b)
	took := now.Sub(t.start)
	b.WriteString(" in ")
	b.WriteString(Duration(took))
	if r := Rate(in, took); r != "" {
		b.WriteString(" (")
		b.WriteString(r)
		b.WriteString(")")
	}
	if note != "" {
		b.WriteString(", ")
		b.WriteString(note)
	}
	return b.String()
}

func (t *Task) appendOut(b *strings.Builder) {
	if out := t.out.Load(); out > 0 {
		b.WriteString(" -> ")
		b.WriteString(Bytes(out))
	}
}
