package bootlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangGuard is how long a call that must not block gets before the test
// fails; it only turns a hang into a failure, it measures nothing.
const hangGuard = 60 * time.Second

// gatedWriter models a serial console under XOFF: each Write waits for a
// token on gate (or for open to be closed), then records the line and
// reports it on wrote.
type gatedWriter struct {
	gate  chan struct{}
	open  chan struct{}
	wrote chan struct{}

	mu  sync.Mutex
	buf bytes.Buffer
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{
		gate:  make(chan struct{}),
		open:  make(chan struct{}),
		wrote: make(chan struct{}, 1<<16),
	}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	select {
	case <-g.gate:
	case <-g.open:
	}
	g.mu.Lock()
	g.buf.Write(p)
	g.mu.Unlock()
	g.wrote <- struct{}{}
	return len(p), nil
}

func (g *gatedWriter) lines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Split(strings.TrimSuffix(g.buf.String(), "\n"), "\n")
}

// counterClock returns 1s, 2s, 3s, ... one step per call, so a line's stamp
// tells when it was logged.
func counterClock() func() time.Duration {
	var n atomic.Int64
	return func() time.Duration { return time.Duration(n.Add(1)) * time.Second }
}

// returns runs fn in a goroutine and fails the test if it has not returned
// within the hang guard.
func returns(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("%s did not return within %v: logging blocks on a stalled console", what, hangGuard)
	}
}

var dropRE = regexp.MustCompile(`^(\[ *\d+\.\d{6}\] )keel: WARN console: (\d+) lines dropped$`)

// With the console stalled for good, logging far more lines than the queue
// holds, through every entry point, must return; Flush must give up; and
// once the console moves again, what was kept comes out in order followed
// by one line counting what was not.
func TestStalledConsoleNeverBlocksLogging(t *testing.T) {
	g := newGatedWriter()
	c := NewWithClock(g, counterClock())
	log := slog.New(c.Handler(slog.LevelInfo))
	lw := c.LineWriter("000-chatty")
	const n = 3 * QueueLines
	returns(t, "logging to a stalled console", func() {
		for i := 0; i < n; i++ {
			switch i % 3 {
			case 0:
				c.Line("src", "line "+strconv.Itoa(i))
			case 1:
				log.Info("line " + strconv.Itoa(i))
			case 2:
				fmt.Fprintf(lw, "line %d\n", i)
			}
		}
	})
	var flushed bool
	returns(t, "Flush on a stalled console", func() { flushed = c.Flush(10 * time.Millisecond) })
	if flushed {
		t.Fatal("Flush reported success while the console was stalled")
	}
	if c.Dropped() == 0 {
		t.Fatal("nothing dropped with the console stalled")
	}

	close(g.open)
	if !c.Flush(hangGuard) {
		t.Fatal("Flush did not complete once the console moved")
	}
	lines := g.lines()
	last := lines[len(lines)-1]
	m := dropRE.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q is not a drop notice", last)
	}
	kept := lines[:len(lines)-1]
	for i, l := range kept {
		if !strings.HasSuffix(l, " line "+strconv.Itoa(i)) {
			t.Fatalf("line %d is %q: order lost", i, l)
		}
	}
	dropped, _ := strconv.Atoi(m[2])
	if len(kept)+dropped != n || uint64(dropped) != c.Dropped() {
		t.Errorf("%d lines kept and %d dropped (Dropped()=%d), want %d in all", len(kept), dropped, c.Dropped(), n)
	}
	// The notice carries the time the first dropped line was logged:
	// one tick after the last kept one.
	if want := string(AppendStamp(nil, time.Duration(len(kept)+1)*time.Second)); m[1] != want {
		t.Errorf("drop notice stamped %q, want %q", m[1], want)
	}
	lw.Close()
}

// When the console moves a little and lines are logged again before the
// queue drains, the notice goes exactly where the lost lines were: after
// the lines logged before them, before those logged after. Stamps are those
// of the moment each line was logged, not written.
func TestDropNoticeKeepsItsPlace(t *testing.T) {
	g := newGatedWriter()
	c := NewWithClock(g, counterClock())
	const n = 2 * QueueLines
	returns(t, "logging to a stalled console", func() {
		for i := 0; i < n; i++ {
			c.Line("a", strconv.Itoa(i))
		}
	})
	// Let a few lines out, so there is room again.
	for i := 0; i < 10; i++ {
		select {
		case g.gate <- struct{}{}:
		case <-time.After(hangGuard):
			t.Fatal("the writer took no line")
		}
	}
	for i := 0; i < 10; i++ {
		select {
		case <-g.wrote:
		case <-time.After(hangGuard):
			t.Fatal("the writer wrote no line")
		}
	}
	c.Line("b", "after")
	close(g.open)
	if !c.Flush(hangGuard) {
		t.Fatal("Flush did not complete")
	}
	lines := g.lines()
	if len(lines) < 3 {
		t.Fatalf("only %d lines: %q", len(lines), lines)
	}
	kept := lines[:len(lines)-2]
	for i, l := range kept {
		want := string(AppendStamp(nil, time.Duration(i+1)*time.Second)) + "a: " + strconv.Itoa(i)
		if l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
	notice := dropRE.FindStringSubmatch(lines[len(lines)-2])
	if notice == nil {
		t.Fatalf("line before the last is %q, not a drop notice; all:\n%s", lines[len(lines)-2], strings.Join(lines, "\n"))
	}
	if want := strconv.Itoa(n - len(kept)); notice[2] != want {
		t.Errorf("notice counts %s lines, want %s", notice[2], want)
	}
	if want := string(AppendStamp(nil, time.Duration(len(kept)+1)*time.Second)); notice[1] != want {
		t.Errorf("drop notice stamped %q, want %q", notice[1], want)
	}
	if want := string(AppendStamp(nil, time.Duration(n+1)*time.Second)) + "b: after"; lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
}

// Lines from concurrent loggers keep each logger's order, and stamps on the
// console never go backwards.
func TestConcurrentOrder(t *testing.T) {
	var out syncBuffer
	c := New(&out)
	const loggers, each = 4, QueueLines / 8
	var wg sync.WaitGroup
	for l := 0; l < loggers; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c.Line("g"+strconv.Itoa(l), strconv.Itoa(i))
			}
		}()
	}
	wg.Wait()
	flush(t, c)
	next := make([]int, loggers)
	var prev float64
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var ts float64
		var l, i int
		if _, err := fmt.Sscanf(line, "[%f] g%d: %d", &ts, &l, &i); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ts < prev {
			t.Errorf("stamp went backwards at %q", line)
		}
		prev = ts
		if i != next[l] {
			t.Fatalf("logger %d: line %d after %d", l, i, next[l]-1)
		}
		next[l]++
	}
	for l, n := range next {
		if n != each {
			t.Errorf("logger %d: %d lines, want %d", l, n, each)
		}
	}
}

// Flush waits only for lines logged before it; it returns at once on an
// idle console and gives up on a stalled one.
func TestFlushBounded(t *testing.T) {
	g := newGatedWriter()
	c := NewWithClock(g, counterClock())
	if !c.Flush(0) {
		t.Error("Flush on an idle console reported lines pending")
	}
	returns(t, "logging to a stalled console", func() { c.Line("x", "stuck") })
	for range 3 {
		var ok bool
		returns(t, "Flush with the writer blocked", func() { ok = c.Flush(time.Millisecond) })
		if ok {
			t.Fatal("Flush reported success with the writer blocked")
		}
	}
	c.mu.Lock()
	waiters := len(c.waiters)
	c.mu.Unlock()
	if waiters != 0 {
		t.Errorf("%d flush waiters left behind after timeouts", waiters)
	}
	close(g.open)
	flush(t, c)
}

// panicWriter panics on its first write, as a broken console driver might.
type panicWriter struct {
	once sync.Once
	out  syncBuffer
}

func (p *panicWriter) Write(b []byte) (int, error) {
	p.once.Do(func() { panic("console write") })
	return p.out.Write(b)
}

// A panic in the console's writer must neither end the process nor stop
// the console.
func TestWriterPanicRestarts(t *testing.T) {
	p := &panicWriter{}
	c := New(p)
	c.Line("x", "lost with the panic")
	c.Line("x", "after")
	flush(t, c)
	// The panic is reported on the console once recovered, which is before
	// the writer restarts and writes "after": a second flush covers it.
	flush(t, c)
	if s := p.out.String(); !strings.Contains(s, "x: after\n") || !strings.Contains(s, "keel: ERROR panic goroutine=\"console writer\"") {
		t.Errorf("console after a writer panic:\n%s", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Flush drains a terminal after writing to it (tcdrain); a writer that is a
// file but not a terminal (here a pipe) has nothing to drain, and Flush
// reports success once the lines are written.
func TestFlushOnAFileThatIsNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := r.Read(b)
		got <- b[:n]
	}()
	c := New(w)
	c.Line("test", "to a pipe")
	if !c.Flush(5 * time.Second) {
		t.Fatal("Flush to a pipe reported failure")
	}
	if b := <-got; !strings.Contains(string(b), "test: to a pipe") {
		t.Errorf("pipe got %q", b)
	}
}
