package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// redrawEvery bounds how often the live lines are redrawn: often enough to
// look alive, rarely enough to cost nothing and not to flicker.
const redrawEvery = 100 * time.Millisecond

// maxLive is how many live lines are drawn at most; more tasks than that
// share one "+N more" line. A live area taller than the screen could not
// be redrawn in place.
const maxLive = 8

// ANSI sequences used in TTY mode.
const (
	cursorUp  = "\x1b[%dA" // to the same column, n lines up
	clearDown = "\x1b[J"   // from the cursor to the end of the screen
)

// A Display shows tasks on w. It is also an io.Writer for whole lines
// that must stay (results, warnings): in TTY mode they are printed above
// the live lines instead of through them.
type Display struct {
	w     io.Writer
	mode  Mode
	now   func() time.Time
	width func() int

	mu    sync.Mutex
	tasks []*Task // running, in the order they started
	drawn int     // live lines on screen, just above the cursor
	// dirty says that a counter changed since the last redraw.
	dirty atomic.Bool

	stopOnce sync.Once
	stop     chan struct{}
	stopped  chan struct{}
}

// New returns a display writing to w in mode m. In TTY mode it redraws
// on its own until Close.
func New(w io.Writer, m Mode) *Display {
	d := newDisplay(w, m, time.Now, widthOf(w))
	if m == TTY {
		d.stop, d.stopped = make(chan struct{}), make(chan struct{})
		go d.loop()
	}
	return d
}

// newDisplay makes a display that redraws only when told to (tests drive
// redraw and the clock themselves).
func newDisplay(w io.Writer, m Mode, now func() time.Time, width func() int) *Display {
	return &Display{w: w, mode: m, now: now, width: width}
}

// widthOf returns the width of the terminal w is, or 80 columns when w is
// not one (a forced --progress=tty into a pipe).
func widthOf(w io.Writer) func() int {
	f, ok := w.(*os.File)
	return func() int {
		if ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		return 80
	}
}

func (d *Display) loop() {
	defer close(d.stopped)
	tick := time.NewTicker(redrawEvery)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
			if d.dirty.Load() {
				d.redraw()
			}
		}
	}
}

// Close stops redrawing and clears the live lines of tasks that never
// ended. The display still takes lines afterwards.
func (d *Display) Close() {
	if d == nil {
		return
	}
	d.stopOnce.Do(func() {
		if d.stop != nil {
			close(d.stop)
			<-d.stopped
		}
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tasks = nil
	if d.mode == TTY && d.drawn > 0 {
		var b bytes.Buffer
		d.erase(&b)
		d.w.Write(b.Bytes())
	}
}

// Start adds a task, shown as label.
func (d *Display) Start(label string) *Task {
	if d == nil {
		return nil
	}
	t := &Task{d: d, label: label, start: d.now()}
	d.mu.Lock()
	d.tasks = append(d.tasks, t)
	d.mu.Unlock()
	d.touch()
	return t
}

// Write prints whole lines that stay. In TTY mode they go above the live
// lines, which are drawn again below them.
func (d *Display) Write(p []byte) (int, error) {
	if d == nil || d.mode == None {
		return len(p), nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode == Plain {
		return d.w.Write(p)
	}
	var b bytes.Buffer
	d.erase(&b)
	b.Write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		b.WriteByte('\n')
	}
	d.draw(&b)
	if _, err := d.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *Display) touch() {
	if d != nil {
		d.dirty.Store(true)
	}
}

// end takes t off the live lines and, if summarize, prints its summary.
func (d *Display) end(t *Task, note string, summarize bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	for i, x := range d.tasks {
		if x == t {
			d.tasks = append(d.tasks[:i], d.tasks[i+1:]...)
			break
		}
	}
	var b bytes.Buffer
	switch d.mode {
	case None:
		return
	case Plain:
		if !summarize {
			return
		}
		b.WriteString(t.summary(d.now(), note))
		b.WriteByte('\n')
	case TTY:
		d.erase(&b)
		if summarize {
			b.WriteString(t.summary(d.now(), note))
			b.WriteByte('\n')
		}
		d.draw(&b)
	}
	d.w.Write(b.Bytes())
}

// redraw draws the live lines again in place (TTY mode only).
func (d *Display) redraw() {
	d.dirty.Store(false)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode != TTY {
		return
	}
	var b bytes.Buffer
	d.erase(&b)
	d.draw(&b)
	if b.Len() > 0 {
		d.w.Write(b.Bytes())
	}
}

// erase moves the cursor up to the first live line and clears the live
// lines. Called with d.mu held.
func (d *Display) erase(b *bytes.Buffer) {
	if d.drawn > 0 {
		fmt.Fprintf(b, cursorUp, d.drawn)
		b.WriteString(clearDown)
		d.drawn = 0
	}
}

// draw writes a live line per running task, each cut to the terminal's
// width, and leaves the cursor below them. Called with d.mu held, just
// after erase.
func (d *Display) draw(b *bytes.Buffer) {
	width := d.width() - 1 // the last column would wrap on some terminals
	now := d.now()
	for i, t := range d.tasks {
		line := t.live(now)
		if i == maxLive-1 && len(d.tasks) > maxLive {
			line = fmt.Sprintf("+%d more", len(d.tasks)-i)
		}
		b.WriteString(truncate(line, width))
		b.WriteByte('\n')
		d.drawn++
		if i == maxLive-1 {
			break
		}
	}
}
