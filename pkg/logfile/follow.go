package logfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// followInterval is how often Follow looks for more of the log.
var followInterval = 200 * time.Millisecond

// Follow writes the last n lines of the log at path to w (as Tail: n <= 0
// is everything kept), then what is appended to it as it comes, until ctx
// is done, when it returns nil. It follows the log across its rotations:
// when path is moved to path.1 and a new path started, it reads the old
// file to its end, then the new one from its start. Should the log rotate
// twice between two looks, the file in between is read from path.1; more
// rotations than that lose what they moved away. It polls, every 200 ms.
func Follow(ctx context.Context, path string, n int, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	cur, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	fl := &follower{path: path, w: w, f: f, off: int64(len(cur))}
	all := cur
	if n <= 0 || countLines(cur) < n {
		// The rotated file, unless it is the one just opened (the log
		// rotated in between: what was before it is gone).
		old, err := fl.readOld()
		if err != nil {
			return err
		}
		if len(old) > 0 {
			if old[len(old)-1] != '\n' {
				old = append(old, '\n')
			}
			all = append(old, cur...)
		}
	}
	if _, err := w.Write(lastLines(all, n)); err != nil {
		return err
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := fl.poll(); err != nil {
			return err
		}
	}
}

type follower struct {
	path string
	w    io.Writer
	f    *os.File // the file being read: path, or what was path
	off  int64    // how much of f was written to w
}

// readOld reads path.1 whole, unless it is missing or is f itself.
func (fl *follower) readOld() ([]byte, error) {
	o, err := os.Open(fl.path + ".1")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer o.Close()
	if same(o, fl.f) {
		return nil, nil
	}
	return io.ReadAll(o)
}

// poll writes what was added to the log since the last poll, moving on to
// the newer files when the log rotated.
func (fl *follower) poll() error {
	for {
		if err := fl.drain(); err != nil {
			return err
		}
		fi, err := os.Stat(fl.path)
		if errors.Is(err, fs.ErrNotExist) {
			// Between the move to path.1 and the new file's creation, or
			// the log cannot be made: look again at the next poll.
			return nil
		}
		if err != nil {
			return err
		}
		ffi, err := fl.f.Stat()
		if err != nil {
			return err
		}
		if os.SameFile(fi, ffi) {
			if ffi.Size() < fl.off {
				// Truncated in place (when it could not be moved): from
				// its start again.
				if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
					return err
				}
				fl.off = 0
				return fl.drain()
			}
			return nil
		}
		// Rotated: f was closed by its writer before the move, so what
		// it holds now is all it will hold.
		if err := fl.drain(); err != nil {
			return err
		}
		next, err := fl.next()
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		fl.f.Close()
		fl.f, fl.off = next, 0
	}
}

// next opens the file that came after f, which its writer moved to
// path.1: path.1 when that is no longer f (the log rotated again since),
// else path; nil if both are gone. path is opened first: should the log
// rotate in between, path.1 is then the file after f, not the one path
// now holds.
func (fl *follower) next() (*os.File, error) {
	nf, err := os.Open(fl.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	o, err := os.Open(fl.path + ".1")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if nf != nil {
			nf.Close()
		}
		return nil, err
	}
	if o != nil && !same(o, fl.f) {
		if nf != nil {
			nf.Close()
		}
		return o, nil
	}
	if o != nil {
		o.Close()
	}
	return nf, nil
}

// drain writes f from off to its end.
func (fl *follower) drain() error {
	buf := make([]byte, 32<<10)
	for {
		k, err := fl.f.Read(buf)
		if k > 0 {
			if _, werr := fl.w.Write(buf[:k]); werr != nil {
				return werr
			}
			fl.off += int64(k)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func same(a, b *os.File) bool {
	ai, err := a.Stat()
	if err != nil {
		return false
	}
	bi, err := b.Stat()
	return err == nil && os.SameFile(ai, bi)
}
