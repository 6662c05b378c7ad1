package oci

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces file with what write writes, so that a reader,
// or the next run after a crash or a full disk, finds the old contents or
// the new ones whole, never a mix: the data goes to a temporary file in
// the same directory (a rename does not cross filesystems), which is
// synced, given perm, and renamed over file; the directory is then synced
// so that the rename itself survives a crash. On error file is untouched
// and the temporary file removed.
func WriteFileAtomic(file string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	// CreateTemp makes the file 0600 whatever the umask; perm is what the
	// file had when written in place.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", file, err)
	}
	return nil
}

// syncDir makes the entries of dir (a rename into it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
