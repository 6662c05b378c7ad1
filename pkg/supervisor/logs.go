package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// Log bounds: a service's log is rotated once it passes DefaultLogMax,
// keeping one older file (<name>.log.1), so each service holds at most
// about twice that on /var.
const (
	DefaultLogMax   = 1 << 20
	DefaultLogCheck = 250 * time.Millisecond
)

// RotateLog moves the content of path to path.1 (replacing it) and empties
// path, when path is larger than limit. The writer (containerd's shim, or
// containerd itself) keeps its file open in append mode, so the file is
// copied and truncated in place rather than renamed; what is written
// between the copy and the truncation is lost, a few bytes at most.
func RotateLog(path string, limit int64) (rotated bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || fi.Size() <= limit {
		return false, err
	}
	src, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	defer src.Close()
	tmp := path + ".1.tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	// Only the newest limit bytes are kept: a burst far beyond the bound is
	// cut, not copied whole.
	size := fi.Size()
	off := max(size-limit, 0)
	_, err = io.Copy(dst, io.NewSectionReader(src, off, size-off))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path+".1")
	}
	if err != nil {
		_ = os.Remove(tmp)
		// Still bound the log: emptying it loses lines but keeps /var.
		_ = src.Truncate(0)
		return true, fmt.Errorf("rotate log: %w", err)
	}
	if err := src.Truncate(0); err != nil {
		return true, fmt.Errorf("rotate log: %w", err)
	}
	return true, nil
}

// KeepLogsBounded checks the logs paths() names every interval and
// rotates those larger than limit, until ctx is done.
func KeepLogsBounded(ctx context.Context, log *slog.Logger, interval time.Duration, limit int64, paths func() []string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	warned := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range paths() {
			if _, err := RotateLog(p, limit); err != nil && !warned[p] {
				warned[p] = true
				log.Warn("log rotation", "log", p, "err", err)
			}
		}
	}
}

// TailLog returns the last n lines of a log, reading the rotated file
// (path.1) too when path alone has fewer. n <= 0 means everything kept.
func TailLog(path string, n int) ([]byte, error) {
	cur, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	all := cur
	if len(old) > 0 && (n <= 0 || countLines(cur) < n) {
		if old[len(old)-1] != '\n' {
			old = append(old, '\n')
		}
		all = append(old, cur...)
	}
	return lastLines(all, n), nil
}

func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// lastLines is the tail of b holding its last n lines (all if n <= 0).
func lastLines(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}
