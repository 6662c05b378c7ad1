package bootlog

import (
	"bytes"
	"sync"
)

// maxLine bounds a line held back waiting for its newline, so a process
// that writes without newlines cannot grow PID 1's memory without limit;
// longer lines are printed in pieces.
const maxLine = 4096

// LineWriter turns a byte stream (a container's stdout or stderr) into
// console lines "[ts] source: line".
type LineWriter struct {
	c      *Console
	source string

	mu      sync.Mutex
	pending []byte
}

// LineWriter returns a writer that prints each complete line written to it
// on the console, prefixed by source. Call Close to print a last line that
// has no newline.
func (c *Console) LineWriter(source string) *LineWriter {
	return &LineWriter{c: c, source: source}
}

// Write implements io.Writer. It never fails.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			for len(w.pending) >= maxLine {
				w.c.Line(w.source, string(w.pending[:maxLine]))
				w.pending = append(w.pending[:0], w.pending[maxLine:]...)
			}
			break
		}
		line := p[:i]
		if len(w.pending) > 0 {
			line = append(w.pending, line...)
			w.pending = w.pending[:0]
		}
		w.c.Line(w.source, string(bytes.TrimSuffix(line, []byte{'\r'})))
		p = p[i+1:]
	}
	return n, nil
}

// Close prints what is left of an unterminated last line.
func (w *LineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.c.Line(w.source, string(w.pending))
		w.pending = nil
	}
	return nil
}
