package progress

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPlainWritesWholeLinesWithoutEscapes(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := newDisplay(&out, Plain, c.now, fixedWidth(80))
	a := d.Start("pull a:1")
	a.SetTotal(6_000_000)
	b := d.Start("pull b:1")
	a.Add(4_000_000)
	a.Skip(2_000_000)
	b.Add(500)
	d.redraw() // plain mode never redraws
	fmt.Fprintf(d, "image a:1 sha256:aaaa\n")
	c.advance(2 * time.Second)
	a.End("1 of 2 layers cached")
	b.Abandon()
	d.Close()

	want := "image a:1 sha256:aaaa\n" +
		"pull a:1: 4.0 MB in 2.0s (2.0 MB/s), 1 of 2 layers cached\n"
	if out.String() != want {
		t.Errorf("plain output:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestTTYRedrawsInPlaceAndLeavesSummaries(t *testing.T) {
	var raw bytes.Buffer
	scr := &screen{t: t}
	c := newClock()
	d := newDisplay(&both{&raw, scr}, TTY, c.now, fixedWidth(80))

	a := d.Start("pull a:1")
	a.SetTotal(10_000_000)
	c.advance(time.Second)
	a.Add(1_000_000)
	d.redraw()
	if got, want := scr.text(), "pull a:1  1.0 MB / 10.0 MB  1.0 MB/s"; got != want {
		t.Fatalf("first frame:\n%s\nwant\n%s", got, want)
	}

	w := d.Start("initrd x-initrd.img")
	w.Add(3_000_000)
	w.AddOut(1_000_000)
	w.Note("segment 2/5")
	a.Skip(4_000_000)
	c.advance(time.Second)
	d.redraw()
	want := "pull a:1  5.0 MB / 10.0 MB  500.0 kB/s\n" +
		"initrd x-initrd.img  3.0 MB -> 1.0 MB  3.0 MB/s  segment 2/5"
	if got := scr.text(); got != want {
		t.Fatalf("second frame:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(raw.String(), "\x1b[1A\x1b[J") {
		t.Errorf("second frame did not redraw the first in place: %q", raw.String())
	}

	// A line written meanwhile goes above the live lines.
	fmt.Fprintf(d, "warning: something\n")
	want = "warning: something\n" + want
	if got := scr.text(); got != want {
		t.Fatalf("after a line:\n%s\nwant\n%s", got, want)
	}

	a.End("2 of 4 layers cached")
	w.End("5 segments, 1 reused")
	d.Close()
	want = "warning: something\n" +
		"pull a:1: 1.0 MB in 2.0s (500.0 kB/s), 2 of 4 layers cached\n" +
		"initrd x-initrd.img: 3.0 MB -> 1.0 MB in 1.0s (3.0 MB/s), 5 segments, 1 reused"
	if got := scr.text(); got != want {
		t.Errorf("final screen:\n%s\nwant\n%s", got, want)
	}
}

func TestTTYCutsLinesToTheTerminal(t *testing.T) {
	scr := &screen{t: t}
	c := newClock()
	d := newDisplay(scr, TTY, c.now, fixedWidth(20))
	d.Start("pull registry.example.com/a/very/long/name:1").Add(1)
	d.redraw()
	if got := scr.text(); got != "pull registry.examp" {
		t.Errorf("live line %q, want it cut to 19 columns", got)
	}
}

func TestTTYLimitsLiveLines(t *testing.T) {
	scr := &screen{t: t}
	c := newClock()
	d := newDisplay(scr, TTY, c.now, fixedWidth(80))
	for i := range maxLive + 3 {
		d.Start(fmt.Sprintf("task %d", i))
	}
	d.redraw()
	lines := strings.Split(scr.text(), "\n")
	if len(lines) != maxLive || lines[maxLive-1] != "+4 more" {
		t.Errorf("%d live lines, last %q; want %d, last \"+4 more\"", len(lines), lines[len(lines)-1], maxLive)
	}
}

func TestAbandonLeavesNothing(t *testing.T) {
	scr := &screen{t: t}
	d := newDisplay(scr, TTY, newClock().now, fixedWidth(80))
	task := d.Start("pull a:1")
	d.redraw()
	task.Abandon()
	task.End("too late") // only the first end counts
	d.Close()
	if got := scr.text(); got != "" {
		t.Errorf("screen after an abandoned task: %q", got)
	}
}

func TestCloseClearsUnfinishedTasks(t *testing.T) {
	scr := &screen{t: t}
	d := newDisplay(scr, TTY, newClock().now, fixedWidth(80))
	d.Start("pull a:1")
	d.redraw()
	d.Close()
	if got := scr.text(); got != "" {
		t.Errorf("screen after Close: %q", got)
	}
}

func TestNoneShowsNothing(t *testing.T) {
	var out bytes.Buffer
	d := newDisplay(&out, None, newClock().now, fixedWidth(80))
	task := d.Start("pull a:1")
	task.Add(10)
	fmt.Fprintf(d, "image a:1\n")
	d.redraw()
	task.End("done")
	d.Close()
	if out.Len() != 0 {
		t.Errorf("none mode wrote %q", out.String())
	}
}

func TestNilDisplayAndTaskDoNothing(t *testing.T) {
	var d *Display
	task := d.Start("x")
	task.SetTotal(1)
	task.Add(1)
	task.Skip(1)
	task.AddOut(1)
	task.Note("n")
	task.End("e")
	task.Abandon()
	if _, err := fmt.Fprintf(d, "line\n"); err != nil {
		t.Error(err)
	}
	d.Close()
}

// TestConcurrentTasks runs tasks, lines and redraws at once (run it with
// -race) and checks that what is left on the screen is every summary and
// every line, whole, and no live line.
func TestConcurrentTasks(t *testing.T) {
	for _, mode := range []Mode{Plain, TTY} {
		t.Run(mode.String(), func(t *testing.T) {
			scr := &screen{t: t}
			c := newClock()
			d := newDisplay(&locked{w: scr}, mode, c.now, fixedWidth(200))
			const n = 8
			var wg sync.WaitGroup
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
						c.advance(time.Millisecond)
						d.redraw()
					}
				}
			}()
			for i := range n {
				wg.Go(func() {
					task := d.Start(fmt.Sprintf("task %d", i))
					task.SetTotal(2000)
					for range 1000 {
						task.Add(1)
						task.Skip(1)
					}
					task.Note("almost")
					fmt.Fprintf(d, "line %d\n", i)
					task.End("done")
				})
			}
			wg.Wait()
			close(stop)
			d.Close()
			got := strings.Split(scr.text(), "\n")
			if len(got) != 2*n {
				t.Fatalf("%d lines on screen, want %d:\n%s", len(got), 2*n, scr.text())
			}
			for i := range n {
				var line, summary bool
				for _, l := range got {
					line = line || l == fmt.Sprintf("line %d", i)
					summary = summary || strings.HasPrefix(l, fmt.Sprintf("task %d: 1.0 kB in ", i)) && strings.HasSuffix(l, ", done")
				}
				if !line || !summary {
					t.Errorf("task %d: line %v, summary %v on screen:\n%s", i, line, summary, scr.text())
				}
			}
		})
	}
}

// both writes to two writers.
type both struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (w *both) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}

// locked serializes writes, as a file or terminal does; the screen model
// itself is not safe for concurrent use.
type locked struct {
	mu sync.Mutex
	w  *screen
}

func (l *locked) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNewRedrawsOnItsOwnUntilClose checks the real constructor: its redraw
// loop starts and stops (no timing is asserted, only the end state).
func TestNewRedrawsOnItsOwnUntilClose(t *testing.T) {
	scr := &screen{t: t}
	d := New(&locked{w: scr}, TTY)
	task := d.Start("pull a:1")
	task.Add(5)
	task.End("ok")
	d.Close()
	d.Close() // twice is fine
	if got := scr.text(); !strings.HasPrefix(got, "pull a:1: 5 B in ") || !strings.HasSuffix(got, ", ok") {
		t.Errorf("screen: %q", got)
	}
}
