package xattrs

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Applier sets manifest entries on the files under one root directory.
//
// It only ever sets attributes on files of the root's own filesystem,
// reached through real directories: a parent that is a symlink, or a path
// that crosses into another mount, is refused. The build resolves
// symlinked parents before it writes a manifest, so an honest manifest
// never needs either; refusing them keeps a wrong one from setting
// attributes outside the tree it describes.
type Applier struct {
	root string
	dev  uint64
	// dirs remembers each parent directory checked, and the verdict.
	dirs map[string]error
}

// NewApplier returns an Applier for the tree at root.
func NewApplier(root string) (*Applier, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return nil, fmt.Errorf("xattrs root %s: %w", root, err)
	}
	return &Applier{root: root, dev: st.Dev, dirs: map[string]error{}}, nil
}

// ApplyError is why an entry was not applied.
type ApplyError struct {
	Path, Name string
	// Err is the syscall's errno, or why the path was refused.
	Err error
}

func (e *ApplyError) Error() string { return e.Path + ": " + e.Name + ": " + e.Err.Error() }
func (e *ApplyError) Unwrap() error { return e.Err }

// Apply sets one attribute, replacing any value it had. Its errors are
// *ApplyError.
func (ap *Applier) Apply(e Entry) error {
	fail := func(err error) error { return &ApplyError{Path: e.Path, Name: e.Name, Err: err} }
	if err := e.Check(); err != nil {
		return fail(err)
	}
	if err := ap.checkDir(path.Dir(e.Path)); err != nil {
		return fail(err)
	}
	full := filepath.Join(ap.root, e.Path)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return fail(err)
	}
	if st.Dev != ap.dev {
		return fail(errors.New("on another filesystem mounted over the image's"))
	}
	// Lsetxattr: a symlink's own attributes, never its target's.
	if err := unix.Lsetxattr(full, e.Name, e.Value, 0); err != nil {
		return fail(err)
	}
	return nil
}

// checkDir accepts dir (relative to the root, "." for the root) when it
// and each of its parents is a directory, not a symlink, on the root's
// filesystem.
func (ap *Applier) checkDir(dir string) error {
	if dir == "." {
		return nil
	}
	if err, ok := ap.dirs[dir]; ok {
		return err
	}
	err := ap.checkDir(path.Dir(dir))
	if err == nil {
		var st unix.Stat_t
		switch err = unix.Lstat(filepath.Join(ap.root, dir), &st); {
		case err != nil:
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			err = fmt.Errorf("parent %s is a symlink", dir)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			err = fmt.Errorf("parent %s is not a directory", dir)
		case st.Dev != ap.dev:
			err = fmt.Errorf("parent %s is another filesystem mounted over the image's", dir)
		}
	}
	ap.dirs[dir] = err
	return err
}
