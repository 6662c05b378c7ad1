package initrd

import "io"

// countingWriter reports the bytes written through it to add: a progress
// task's Add or AddOut (which a nil task ignores).
type countingWriter struct {
	w   io.Writer
	add func(int64)
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(int64(n))
	return n, err
}
