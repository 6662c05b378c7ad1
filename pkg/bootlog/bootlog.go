// Package bootlog writes keel's console log: one short line per event,
// stamped with CLOCK_MONOTONIC seconds so that it lines up with the kernel's
// printk timestamps on the same serial console.
//
// A line looks like
//
//	[  2.104512] keel: mounted filesystems
//	[  2.512001] 000-hello: hello from one
//	[  2.600000] keel: WARN containerd died exit=1
//	[  2.700000] keel: ERROR onboot 001-x failed err="..."
//
// The QEMU test harness greps these lines, so the format is a contract.
//
// Logging never blocks the code that logs. A serial console stops taking
// bytes when someone presses Ctrl-S (XOFF) or when the backend behind it
// stalls; if a log call waited for the tty, every goroutine in PID 1 that
// logs, shutdown included, would wait with it. So a line is formatted and
// stamped in the caller, put on a bounded queue, and written by one writer
// goroutine. When the queue is full the line is dropped and counted, and the
// writer later prints one line saying how many were lost, where they were
// lost.
package bootlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"
	"golang.org/x/sys/unix"
)

// The queue's bounds. A 115200 baud serial console writes about 11 KiB a
// second, so QueueBytes is some twenty seconds of backlog: enough to ride
// out a burst (an onboot container dumping its output), small enough that
// a console stalled for good costs PID 1 little memory. A line is queued
// while fewer than QueueBytes wait (so the bound is QueueBytes plus one
// line) and fewer than QueueLines lines, which bounds the per-line
// overhead when lines are short.
const (
	QueueLines = 1024
	QueueBytes = 256 << 10
)

// entry is one formatted line waiting for the writer.
type entry struct {
	line []byte
	seq  uint64
}

// Console serialises whole lines onto one writer, normally PID 1's stdout
// (which the kernel connects to /dev/console). It is safe for concurrent use;
// lines from different sources never interleave, and lines keep the order
// in which they were logged.
type Console struct {
	w   io.Writer
	now func() time.Duration

	// wake tells the writer goroutine there is work; one token is enough,
	// as the writer looks at the queue under mu before it sleeps again.
	wake chan struct{}

	mu      sync.Mutex // guards what follows; never held across a Write
	ring    [QueueLines]entry
	head, n int    // queued entries are ring[head], ..., ring[head+n-1]
	bytes   int    // bytes held by queued lines
	seq     uint64 // sequence number of the last line queued
	written uint64 // sequence number of the last line written
	// dropped lines since the last line queued, and when the first of them
	// was logged; the notice about them goes where they would have been.
	dropped      uint64
	droppedAt    time.Duration
	totalDropped uint64
	waiters      []flushWaiter
}

type flushWaiter struct {
	seq  uint64
	done chan struct{}
}

// New returns a Console writing to w, stamped with the monotonic clock.
// It starts the goroutine that writes to w; that goroutine lives as long as
// the process (PID 1's console does).
func New(w io.Writer) *Console {
	return NewWithClock(w, Monotonic)
}

// NewWithClock is New with a chosen clock, for tests.
func NewWithClock(w io.Writer, now func() time.Duration) *Console {
	c := &Console{w: w, now: now, wake: make(chan struct{}, 1)}
	// A panic in w.Write must not end PID 1, and the console must go on
	// writing afterwards: restart. The panic is reported on the console
	// itself, which is safe since logging only queues.
	goroutine.Go(slog.New(c.Handler(slog.LevelInfo)), "console writer", true, c.run)
	return c
}

// Monotonic is the time since boot on CLOCK_MONOTONIC, the clock printk uses.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Line writes "[ts] source: text". A trailing newline in text is dropped;
// text must not hold other newlines (callers split output into lines).
// It never blocks: see the package comment.
func (c *Console) Line(source, text string) {
	c.write(func(b []byte) []byte {
		b = append(b, source...)
		b = append(b, ": "...)
		b = append(b, text...)
		return b
	})
}

// write formats one line, stamped now, and queues it to be written with a
// single Write, so that a line is never split between two writers on the
// console. The stamp is taken and the line formatted under c.mu, so that
// stamps on the console never go backwards; nothing under c.mu can block.
func (c *Console) write(body func([]byte) []byte) {
	c.mu.Lock()
	at := c.now()
	need := 1
	if c.dropped > 0 {
		need = 2 // the drop notice goes first, to keep the order
	}
	if c.n+need > len(c.ring) || (c.n > 0 && c.bytes >= QueueBytes) {
		if c.dropped == 0 {
			c.droppedAt = at
		}
		c.dropped++
		c.totalDropped++
		c.mu.Unlock()
		return
	}
	b := AppendStamp(make([]byte, 0, 128), at)
	b = body(b)
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	b = append(b, '\n')
	if c.dropped > 0 {
		c.push(c.dropNotice())
	}
	c.push(b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// push queues line; c.mu is held and there is room.
func (c *Console) push(line []byte) {
	c.seq++
	c.ring[(c.head+c.n)%len(c.ring)] = entry{line: line, seq: c.seq}
	c.n++
	c.bytes += len(line)
}

// dropNotice formats the line about the dropped lines and resets the count;
// c.mu is held. It is stamped with the time the first of them was logged,
// so the timestamps on the console stay in order.
func (c *Console) dropNotice() []byte {
	b := AppendStamp(nil, c.droppedAt)
	b = fmt.Appendf(b, "%s: %sconsole: %d lines dropped\n", Source, WarnMarker, c.dropped)
	c.dropped = 0
	return b
}

// next takes the oldest queued line, waiting for one. When the queue is
// empty but lines were dropped at its tail, the notice about them is next.
func (c *Console) next() entry {
	for {
		c.mu.Lock()
		if c.n == 0 && c.dropped > 0 {
			c.push(c.dropNotice())
		}
		if c.n > 0 {
			e := c.ring[c.head]
			c.ring[c.head] = entry{}
			c.head = (c.head + 1) % len(c.ring)
			c.n--
			c.bytes -= len(e.line)
			c.mu.Unlock()
			return e
		}
		c.mu.Unlock()
		<-c.wake
	}
}

// run is the writer goroutine: the only code that touches w.
func (c *Console) run() {
	for {
		e := c.next()
		// A console write error has nowhere to be reported; PID 1 must go on.
		_, _ = c.w.Write(e.line)
		c.mu.Lock()
		c.written = e.seq
		waiters := c.waiters[:0]
		for _, fw := range c.waiters {
			if fw.seq <= c.written {
				close(fw.done)
			} else {
				waiters = append(waiters, fw)
			}
		}
		c.waiters = waiters
		c.mu.Unlock()
	}
}

// Flush waits until every line logged before the call (and the notice of
// any dropped before it) has been written, or until timeout has passed,
// and reports whether everything was written. Shutdown calls it before
// reboot(2) so that the last lines reach a console that is not stalled;
// the timeout keeps a stalled one from holding the machine.
func (c *Console) Flush(timeout time.Duration) bool {
	c.mu.Lock()
	target := c.seq
	if c.dropped > 0 {
		// The notice about them will be the next line queued.
		target++
	}
	if c.written >= target {
		c.mu.Unlock()
		t := time.NewTimer(timeout)
		defer t.Stop()
		return c.drain(t.C)
	}
	fw := flushWaiter{seq: target, done: make(chan struct{})}
	c.waiters = append(c.waiters, fw)
	c.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-fw.done:
		return c.drain(t.C)
	case <-t.C:
		// Forget the waiter, so that a console stalled for good does not
		// collect one per call.
		c.mu.Lock()
		for i, w := range c.waiters {
			if w.done == fw.done {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return false
	}
}

// drain waits, until timeout fires, for a terminal to have sent out what
// was written to it (tcdrain). Written is not sent: a hang-up of the tty
// (the console shell's session ending, as the shutdown stops it) discards
// what its driver still holds, and CI saw a shutdown line cut off after
// "kee" so. A writer that is not a terminal has nothing to drain.
func (c *Console) drain(timeout <-chan time.Time) bool {
	f, ok := c.w.(interface{ Fd() uintptr })
	if !ok {
		return true
	}
	done := make(chan error, 1)
	// A stalled (XOFF) terminal never drains: the wait is bounded, and
	// the goroutine ends when the terminal moves again, if ever.
	goroutine.Go(slog.New(slog.DiscardHandler), "console drain", false, func() {
		done <- unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	})
	select {
	case err := <-done:
		return err == nil || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL)
	case <-timeout:
		return false
	}
}

// Dropped is how many lines have been dropped because the console could
// not keep up, since c was made.
func (c *Console) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totalDropped
}

// AppendStamp appends "[%10.6f] " for d, the printk style timestamp.
func AppendStamp(b []byte, d time.Duration) []byte {
	return fmt.Appendf(b, "[%10.6f] ", d.Seconds())
}
