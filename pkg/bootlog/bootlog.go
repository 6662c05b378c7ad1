// Package bootlog writes keel's console log: one short line per event,
// stamped with CLOCK_MONOTONIC seconds so that it lines up with the kernel's
// printk timestamps on the same serial console.
//
// A line looks like
//
//	[  2.104512] keel: mounted filesystems
//	[  2.512001] 000-hello: hello from one
//
// The QEMU test harness greps these lines, so the format is a contract.
package bootlog

import (
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Console serialises whole lines onto one writer, normally PID 1's stdout
// (which the kernel connects to /dev/console). It is safe for concurrent use;
// lines from different sources never interleave.
type Console struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Duration
	buf []byte
}

// New returns a Console writing to w, stamped with the monotonic clock.
func New(w io.Writer) *Console {
	return &Console{w: w, now: Monotonic}
}

// NewWithClock is New with a chosen clock, for tests.
func NewWithClock(w io.Writer, now func() time.Duration) *Console {
	return &Console{w: w, now: now}
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
func (c *Console) Line(source, text string) {
	c.write(func(b []byte) []byte {
		b = append(b, source...)
		b = append(b, ": "...)
		b = append(b, text...)
		return b
	})
}

// write formats one line under the lock and writes it with a single Write,
// so that a line is never split between two writers on the console.
func (c *Console) write(body func([]byte) []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := AppendStamp(c.buf[:0], c.now())
	b = body(b)
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	b = append(b, '\n')
	// A console write error has nowhere to be reported; PID 1 must go on.
	_, _ = c.w.Write(b)
	c.buf = b
}

// AppendStamp appends "[%10.6f] " for d, the printk style timestamp.
func AppendStamp(b []byte, d time.Duration) []byte {
	return fmt.Appendf(b, "[%10.6f] ", d.Seconds())
}
