package initrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/cpio"
)

// go-diskfs (v1.9.4) makes a squashfs image from a directory on the build
// host, its "workspace": Finalize walks it and takes each file's type,
// owner, mode, times and device numbers from the host's stat. So the
// squashfs sink writes the tree there, and the image keeps what the host
// directory can hold. What that costs, and what it does not keep:
//
//   - ownership is lost: every file is 0/0 in the image. go-diskfs reads
//     the owner from os.FileInfo.Sys() as a *unix.Stat_t, but os returns a
//     *syscall.Stat_t, so the assertion fails and uid and gid stay 0. The
//     sink still chowns the workspace, so a fixed go-diskfs keeps them;
//   - device nodes (and that chown) need root on the build host (mknod);
//     without it the sink fails with an error saying so;
//   - setuid, setgid and sticky bits are lost (go-diskfs stores the mode
//     as uint16(os.FileMode), which drops them);
//   - hard links are not detected: each name is an inode of its own with
//     its own copy of the data (the host's link count is kept);
//   - extended attributes are not written: go-diskfs reads them by a path
//     relative to the working directory, and PID 1 applies the xattrs
//     manifest at boot anyway;
//   - the superblock's mkfs time is time.Now(); it is overwritten with
//     the build's mtime, so that images are reproducible;
//   - the tree is written to disk once more, in the workspace, before the
//     image (memory stays bounded, disk use doubles for the build).
//
// Symlink targets and device numbers are read by go-diskfs with paths
// relative to the working directory, so Finalize runs with the workspace
// as working directory (finalizeMu keeps two builds of one process from
// fighting over it).

// squashfsSink writes a tree into a go-diskfs workspace directory.
type squashfsSink struct {
	root string
	// dirs are the directories written, whose mtimes are set once all
	// their entries are in (writing an entry changes its directory's).
	dirs []Entry
}

func (s *squashfsSink) path(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(name))
}

func (s *squashfsSink) Add(e Entry, data io.Reader) error {
	p := s.path(e.Name)
	var err error
	switch e.Mode & cpio.ModeType {
	case cpio.ModeDir:
		if err := os.Mkdir(p, 0o700); errors.Is(err, fs.ErrExist) {
			return nil // an earlier segment made it; the first one wins, as in the tar
		} else if err != nil {
			return fmt.Errorf("squashfs: %s: %w", e.Name, err)
		}
		s.dirs = append(s.dirs, e)
	case cpio.ModeRegular:
		if e.HardLink != "" {
			err = os.Link(s.path(e.HardLink), p)
			break
		}
		err = writeNewFile(p, data, e.Size)
	case cpio.ModeSymlink:
		err = os.Symlink(e.Linkname, p)
	case cpio.ModeChar, cpio.ModeBlock, cpio.ModeFIFO:
		err = unix.Mknod(p, e.Mode&(cpio.ModeType|cpio.ModePerm), int(unix.Mkdev(e.Devmajor, e.Devminor)))
	default:
		return fmt.Errorf("squashfs: %s: file type %#o not supported", e.Name, e.Mode&cpio.ModeType)
	}
	if err != nil {
		return fmt.Errorf("squashfs: %s: %w", e.Name, err)
	}
	if e.HardLink != "" {
		return nil // same inode: owner, mode and time are the first name's
	}
	return s.setMeta(p, e)
}

func writeNewFile(p string, data io.Reader, size int64) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if size > 0 {
		if _, err := io.CopyN(f, data, size); err != nil {
			f.Close()
			return fmt.Errorf("copy data: %w", err)
		}
	}
	return f.Close()
}

// setMeta gives p the entry's owner, permissions and (but for a
// directory, done last) mtime, without following a symlink.
func (s *squashfsSink) setMeta(p string, e Entry) error {
	if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("squashfs: %s: keep owner %d:%d: %w (go-diskfs takes ownership from the build host's files: kernel+squashfs needs root)", e.Name, e.UID, e.GID, err)
		}
		return fmt.Errorf("squashfs: %s: %w", e.Name, err)
	}
	if e.Mode&cpio.ModeType != cpio.ModeSymlink {
		if err := unix.Chmod(p, e.Mode&cpio.ModePerm); err != nil {
			return fmt.Errorf("squashfs: %s: %w", e.Name, err)
		}
	}
	if e.Mode&cpio.ModeType == cpio.ModeDir {
		return nil
	}
	return lutime(p, e.Mtime)
}

func lutime(p string, mtime int64) error {
	ts := []unix.Timespec{{Sec: mtime}, {Sec: mtime}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("squashfs: set time of %s: %w", p, err)
	}
	return nil
}

// squashfsBlockSize is the data block size; 128 KiB is mksquashfs's
// default.
const squashfsBlockSize = 128 << 10

var finalizeMu sync.Mutex

// WriteSquashfs writes the whole tree of c (the same tree as the initrd
// and the tar, every segment) as a gzip squashfs image at p, with every
// mtime set to mtime.
func WriteSquashfs(p string, c Contents, mtime int64) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	sq, err := squashfs.Create(file.New(f, false), 0, 0, squashfsBlockSize)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	workspace := sq.Workspace()
	defer os.RemoveAll(workspace)
	sink := &squashfsSink{root: workspace}
	if err := writeTree(sink, c, mtime); err != nil {
		return err
	}
	// Deepest first: setting a directory's time after its parent's would
	// change nothing, but the parent's entries are all written by now.
	slices.Reverse(sink.dirs)
	for _, d := range sink.dirs {
		if err := lutime(sink.path(d.Name), d.Mtime); err != nil {
			return err
		}
	}
	if err := lutime(workspace, mtime); err != nil {
		return err
	}
	if err := unix.Chmod(workspace, 0o755); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if err := finalizeIn(workspace, sq); err != nil {
		return err
	}
	// The superblock's mkfs time (bytes 8-11) is the build's, not now.
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], uint32(mtime))
	if _, err := f.WriteAt(t[:], 8); err != nil {
		return fmt.Errorf("squashfs: set mkfs time: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	return nil
}

func finalizeIn(workspace string, sq *squashfs.FileSystem) error {
	finalizeMu.Lock()
	defer finalizeMu.Unlock()
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if err := os.Chdir(workspace); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	defer os.Chdir(wd)
	err = sq.Finalize(squashfs.FinalizeOptions{
		Compression: &squashfs.CompressorGzip{CompressionLevel: 6, WindowSize: 15, Strategies: map[squashfs.GzipStrategy]bool{}},
	})
	if err != nil {
		return fmt.Errorf("squashfs: finalize: %w", err)
	}
	return nil
}
