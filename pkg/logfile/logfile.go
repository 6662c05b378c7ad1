// Package logfile is the log file PID 1 keeps for each container (onboot,
// onshutdown, services) and for containerd: a writer that never fails and
// never blocks on the disk, and bounds its own size.
//
// A container's output is copied from a pipe into its log. If a write
// error stopped that copy (as io.Copy and io.MultiWriter do), nothing
// would drain the pipe, and the container would block on its next write
// once the pipe's buffer filled: a full /var would wedge every service. So
// Write always reports success; what cannot be written is dropped and
// counted, and once writing works again the log says how much was lost.
package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// DefaultMax is the size past which a log is rotated: it becomes
// <path>.1 (replacing the older one), so each log holds at most about
// twice this on /var.
const DefaultMax = 1 << 20

// File is an append-only log that rotates itself at Max bytes. It is safe
// for concurrent use (a container's stdout and stderr share one).
type File struct {
	path string
	max  int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	dropped int64 // bytes lost since the last successful write
	lastErr error
	total   int64 // bytes lost in all
}

// Open opens (creating, appending to) the log at path; max <= 0 means
// DefaultMax. It fails only when the file cannot be opened at all; a
// later failure to write is absorbed by Write.
func Open(path string, max int64) (*File, error) {
	if max <= 0 {
		max = DefaultMax
	}
	l := &File{path: path, max: max}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Path is the log's path.
func (l *File) Path() string { return l.path }

// Write appends p. It always returns len(p), nil: bytes that cannot be
// written (disk full, file gone) are dropped and counted.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if l.f == nil || l.size >= l.max {
		l.rotate()
	}
	if l.f == nil {
		l.drop(len(p), l.lastErr)
		return len(p), nil
	}
	if l.dropped > 0 {
		// Said before the new bytes, so a reader sees where the gap is.
		note := fmt.Appendf(nil, "[keel: %d bytes of output dropped: %v]\n", l.dropped, l.lastErr)
		if n, err := l.f.Write(note); err != nil {
			l.size += int64(n)
			l.drop(len(p), err)
			return len(p), nil
		}
		l.size += int64(len(note))
		l.dropped = 0
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err != nil {
		l.drop(len(p)-n, err)
	}
	return len(p), nil
}

func (l *File) drop(n int, err error) {
	l.dropped += int64(n)
	l.total += int64(n)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is the log's own: say only what went wrong
	}
	if err != nil {
		l.lastErr = err
	}
}

// rotate moves the log to path.1 and starts a new one; with no file open
// (an earlier failure) it tries to open one again.
func (l *File) rotate() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
		if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Keep the log bounded all the same: start it afresh.
			_ = os.Truncate(l.path, 0)
		}
	}
	if err := l.open(); err != nil {
		l.lastErr = err
	}
}

// Dropped is how many bytes were lost in all.
func (l *File) Dropped() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Close closes the file; later writes reopen it.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	// Reopened lazily, not rotated: Write treats a nil file as a rotation
	// only when the size says so.
	l.size = 0
	return err
}
