package logfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
)

// Tail returns the last n lines of a log, reading the rotated file
// (path.1) too when path alone has fewer. n <= 0 means everything kept.
func Tail(path string, n int) ([]byte, error) {
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
