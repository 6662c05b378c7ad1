package mount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MoveTree moves everything under src that lives on src's filesystem into
// dst, an existing directory, one file at a time: each file is copied and
// the original deleted at once, so that moving a RAM-backed tree into
// another never needs room for two copies. Modes, owners, times, symlinks,
// hardlinks, device nodes, fifos and (where both sides support them)
// extended attributes are kept; sockets are skipped. Mount points under src
// become empty directories in dst and are not descended into. dst gets
// src's own mode, owner and times; src itself stays, emptied.
func MoveTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("move tree %s: %w", src, err)
	}
	absDst, err := filepath.Abs(dst)
	if err != nil {
		return fmt.Errorf("move tree to %s: %w", dst, err)
	}
	m := &treeMover{dev: st.Dev, dst: absDst, links: make(map[fileID]string)}
	return m.moveDir(src, dst, &st, true)
}

type fileID struct{ dev, ino uint64 }

type treeMover struct {
	dev   uint64            // the filesystem being moved
	dst   string            // never descended into, should it lie inside src
	links map[fileID]string // first destination of each multiply-linked inode
}

func (m *treeMover) moveDir(src, dst string, st *unix.Stat_t, top bool) error {
	if !top {
		// Owner-only until the contents are in: the real mode may lack
		// write permission for us.
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", dst, err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", src, err)
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if abs, _ := filepath.Abs(s); abs == m.dst {
			continue
		}
		var est unix.Stat_t
		if err := unix.Lstat(s, &est); err != nil {
			return fmt.Errorf("stat %s: %w", s, err)
		}
		if err := m.move(s, d, &est); err != nil {
			return err
		}
	}
	// Directory metadata goes last: adding entries changes its times.
	return copyMetadata(src, dst, st)
}

func (m *treeMover) move(src, dst string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if st.Dev != m.dev {
			// A mount point: keep the directory, not what is mounted there.
			if err := unix.Mkdir(dst, 0o700); err != nil {
				return fmt.Errorf("create directory %s: %w", dst, err)
			}
			return copyMetadata(src, dst, st)
		}
		if err := m.moveDir(src, dst, st, false); err != nil {
			return err
		}
		return removeSource(unix.Rmdir(src), src)
	}
	if st.Dev != m.dev {
		return nil
	}

	// Look the inode up whatever its link count says now: deleting the
	// links already moved has lowered it, down to 1 for the last one.
	id := fileID{st.Dev, st.Ino}
	if first, ok := m.links[id]; ok {
		if err := unix.Link(first, dst); err != nil {
			return fmt.Errorf("link %s to %s: %w", dst, first, err)
		}
		return removeSource(unix.Unlink(src), src)
	}
	if st.Nlink > 1 {
		m.links[id] = dst
	}

	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", src, err)
		}
		if err := unix.Symlink(target, dst); err != nil {
			return fmt.Errorf("create symlink %s: %w", dst, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("create node %s: %w", dst, err)
		}
	default:
		return nil // sockets only mean something to a live process
	}
	if err := copyMetadata(src, dst, st); err != nil {
		return err
	}
	return removeSource(unix.Unlink(src), src)
}

func removeSource(err error, src string) error {
	if err != nil {
		return fmt.Errorf("remove %s after copying it: %w", src, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// copyMetadata gives dst src's owner, mode, extended attributes and times,
// in that order: chown clears set-id bits, and every change touches ctime.
func copyMetadata(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", dst, err)
	}
	return nil
}

// copyXattrs copies extended attributes where both filesystems have them; a
// filesystem without (ramfs) or refusing a namespace is not an error.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		return nil // unsupported or none
	}
	names := make([]byte, size)
	size, err = unix.Llistxattr(src, names)
	if err != nil {
		return nil
	}
	for _, name := range splitNul(names[:size]) {
		vsize, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsize)
		vsize, err = unix.Lgetxattr(src, name, val)
		if err != nil {
			continue
		}
		err = unix.Lsetxattr(dst, name, val[:vsize], 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
