package oci

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockFile is taken around every read and write of the cache's index.json.
const lockFile = "index.lock"

// lockIndex guards index.json, which the layout package rewrites in place:
// a reader must never see it half-written, and two writers must not lose
// each other's entries. The RWMutex orders goroutines of this process; an
// flock on Dir/index.lock orders keel processes sharing the cache (parallel
// builds, a build during mkimages).
func (c *Cache) lockIndex(exclusive bool) (unlock func(), err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
		c.mu.Lock()
	} else {
		c.mu.RLock()
	}
	release := func() {
		if exclusive {
			c.mu.Unlock()
		} else {
			c.mu.RUnlock()
		}
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		release()
		return nil, fmt.Errorf("lock image cache %s: %w", c.Dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		release()
		return nil, fmt.Errorf("lock image cache %s: %w", c.Dir, err)
	}
	return func() {
		f.Close() // closing the only descriptor releases the flock
		release()
	}, nil
}
