package initrd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
	"github.com/keel-os/keel/pkg/oci"
	"github.com/keel-os/keel/pkg/progress"
)

// Segments unused for segmentMaxAge are removed from the cache after a
// build; so are temporary files older than a day (a build that was
// killed).
const segmentMaxAge = 30 * 24 * time.Hour

// pruneSegments removes old segments from the cache directory.
func pruneSegments(dir string, now time.Time) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		age := now.Sub(info.ModTime())
		tmp := strings.HasPrefix(e.Name(), ".segment-")
		if tmp && age > 24*time.Hour || !tmp && age > segmentMaxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// segmentVersion is part of every segment's cache key, with the digest of
// the running keel executable (builderID): a segment made by another
// build of keel is never reused, since the bytes written for the same
// inputs may have changed.
const segmentVersion = "keel-segment-7"

var builderID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
})

// A segment is one cpio archive of the initrd, trailer included. The
// initrd is its segments, each compressed on its own, one after the other:
// the kernel unpacks concatenated compressed archives one by one (and
// forgets hard-link inodes at each trailer, so each segment numbers its
// inodes from 1).
//
// The root is one segment; each bundle is another, so that changing one
// service rewrites only its segment. A segment's key is a digest of
// everything its bytes depend on; segments are cached by key.
type segment struct {
	// name says what the segment holds: "root" or the bundle's path.
	name string
	// key is the segment's cache key, "" when it cannot be cached.
	key string
	// fill writes the segment's entries into a fresh archive.
	fill func(a *Archive) error
}

// write writes the segment as a whole cpio archive and returns what
// writeTo returns.
func (s segment) write(w io.Writer, mtime int64) (segmentInfo, error) {
	cs := newCPIOSink(w)
	info, err := s.writeTo(cs, mtime)
	if err != nil {
		return segmentInfo{}, err
	}
	return info, cs.Close()
}

// segmentInfo is what writing a segment tells beside its bytes.
type segmentInfo struct {
	// xattrWarnings warns of extended attributes (Archive.XattrWarnings).
	xattrWarnings []string
	// tmpfsBytes is the memory the segment's files take once unpacked
	// (Archive.TmpfsBytes).
	tmpfsBytes int64
}

// writeTo writes the segment's entries into sink, which it does not close.
func (s segment) writeTo(sink Sink, mtime int64) (segmentInfo, error) {
	a := NewArchiveTo(sink, mtime)
	if err := s.fill(a); err != nil {
		return segmentInfo{}, err
	}
	// The seal comes last: a segment the kernel unpacked whole has it.
	// The root segment made the seals' directory.
	a.dirWritten(sealsDir)
	if err := a.WriteFile(sealsDir+"/"+bundle.SealName(s.name), 0o444, nil); err != nil {
		return segmentInfo{}, err
	}
	return segmentInfo{a.XattrWarnings(), a.TmpfsBytes()}, nil
}

// discardSink takes entries and drops them: writing a segment into it
// only counts (the root's size, before its list is written).
type discardSink struct{}

func (discardSink) Add(e Entry, data io.Reader) error {
	if data != nil {
		if _, err := io.CopyN(io.Discard, data, e.Size); err != nil {
			return fmt.Errorf("%s: read data: %w", e.Name, err)
		}
	}
	return nil
}

// sealsDir is bundle.SealsDir inside the archive.
var sealsDir = strings.TrimPrefix(bundle.SealsDir, "/")

// keyOf digests the parts of a key; any "" part means the segment cannot
// be cached, and gives "".
func keyOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		if p == "" {
			return ""
		}
		// Length-prefixed, so that no two lists of parts collide.
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// imageID is an image's manifest digest, "" when it has none.
func imageID(img Image) string {
	if img.Image == nil {
		return ""
	}
	d, err := img.Image.Digest()
	if err != nil {
		return ""
	}
	return d.String()
}

// segments splits the initrd into its segments, in order: the root, whose
// seal list names the segments without their sizes, then the bundles'.
// The outputs that are not unpacked into the kernel's tmpfs (tar,
// squashfs, WriteCPIO) use these; the initrd lists sizes (splitSegments).
func (c Contents) segments() ([]segment, error) {
	root, segs, err := c.splitSegments()
	if err != nil {
		return nil, err
	}
	return append([]segment{root(nil)}, segs...), nil
}

// splitSegments returns the bundles' segments, in order, and a function
// that makes the root segment, which comes first in the initrd and lists
// every segment's seal (see bundle.SealsDir). root(nil) lists the names
// only; root(sizes), sizes being the tmpfs bytes of each of segs, lists
// "name bytes" lines, the root's own bytes included: so the root is made
// after the other segments.
func (c Contents) splitSegments() (root func(sizes []int64) segment, segs []segment, err error) {
	// The root's key: the init images, the modules, the index, the files
	// and which bundle directories exist.
	parts := []string{segmentVersion, "root"}
	for _, img := range c.Init {
		parts = append(parts, imageID(img))
	}
	if c.Modules != nil {
		parts = append(parts, "modules", c.Modules.ID)
	}
	for _, f := range c.ModuleFiles {
		parts = append(parts, "module file", f.Path, digestOf(f.Data))
	}
	files, err := json.Marshal(c.Files)
	if err != nil {
		return nil, nil, fmt.Errorf("encode files for the segment cache: %w", err)
	}
	parts = append(parts, "files", digestOf(files))
	for _, d := range bundleDirs(c.Bundles, c.Overlays) {
		parts = append(parts, "dir", d)
	}
	for _, g := range sharedGroups(c.Bundles, c.Overlays) {
		var members []bundleData
		parts := []string{segmentVersion, "bundles"}
		if g.lower != "" {
			parts = append(parts, "lower", g.lower)
		}
		for _, b := range g.bundles {
			cfg, runtime, err := bundleFiles(b, g.lowerOf(b))
			if err != nil {
				return nil, nil, err
			}
			members = append(members, bundleData{b, cfg, runtime})
			parts = append(parts, b.Path(), imageID(b.Image), digestOf(cfg), digestOf(runtime))
		}
		lower := g.lower
		segs = append(segs, segment{name: g.bundles[0].Path(), key: keyOf(parts...), fill: func(a *Archive) error { return writeBundles(a, members, lower) }})
	}
	root = func(sizes []int64) segment {
		// The others' names, and their lines of the size list; the
		// root's own come first.
		var names, others strings.Builder
		for i, s := range segs {
			names.WriteString(s.name + "\n")
			if sizes != nil {
				fmt.Fprintf(&others, "%s %d\n", s.name, sizes[i])
			}
		}
		// The root's own size is a function of what its key covers and
		// of the lists (their length).
		key := keyOf(append(parts, "seals", strconv.FormatBool(sizes != nil), digestOf([]byte(names.String())), digestOf([]byte(others.String())))...)
		rest := func(a *Archive) error {
			if err := a.MkdirAll(sealsDir); err != nil {
				return err
			}
			return writeRoot(a, c)
		}
		fill := func(a *Archive) error {
			expected := []byte("root\n" + names.String())
			var tmpfs []byte
			var want int64 = -1
			if sizes != nil {
				// What the root takes without its lists is counted by
				// writing it once into nothing; the size list's own
				// pages depend on the root's figure, written in it: a
				// few rounds settle it.
				info, err := segment{name: "root", fill: rest}.writeTo(discardSink{}, 0)
				if err != nil {
					return err
				}
				base := info.tmpfsBytes + tmpfsCharge(Entry{Mode: cpio.ModeRegular, Size: int64(len(expected))})
				want = base
				for range 10 {
					tmpfs = []byte(fmt.Sprintf("root %d\n%s", want, others.String()))
					next := base + tmpfsCharge(Entry{Mode: cpio.ModeRegular, Size: int64(len(tmpfs))})
					if next == want {
						break
					}
					want = next
				}
			}
			// First of all: whatever of the initrd the kernel unpacks, it
			// has the lists, and PID 1 can tell what is missing. The
			// names and the sizes are two files: a PID 1 older than the
			// sizes reads the names as it always did.
			if err := a.MkdirAll(sealsDir); err != nil {
				return err
			}
			if err := a.WriteFile(strings.TrimPrefix(bundle.SealsExpected, "/"), 0o444, expected); err != nil {
				return err
			}
			if tmpfs != nil {
				if err := a.WriteFile(strings.TrimPrefix(bundle.SealsTmpfs, "/"), 0o444, tmpfs); err != nil {
					return err
				}
			}
			if err := writeRoot(a, c); err != nil {
				return err
			}
			if want >= 0 && a.TmpfsBytes() != want {
				return fmt.Errorf("root segment: its files take %d bytes, its size list says %d", a.TmpfsBytes(), want)
			}
			return nil
		}
		return segment{name: "root", key: key, fill: fill}
	}
	return root, segs, nil
}

// SegmentStats counts what a build did with its segments.
type SegmentStats struct {
	// Written segments were made and compressed by this build; Reused ones
	// came from the cache.
	Written, Reused int
	// XattrWarnings warns of the images' extended attributes that may not
	// be set at boot, one line per image and kind (Archive.XattrWarnings; kept
	// beside cached segments, so warm builds say it too).
	XattrWarnings []string
}

// xattrWarningsExt is the suffix of the file kept beside a cached segment
// that holds its xattr warnings. The suffix predates the name: caches
// made before still show their warnings.
const xattrWarningsExt = ".dropped"

// tmpfsBytesExt is the suffix of the file kept beside a cached segment
// that holds its tmpfs bytes (Archive.TmpfsBytes), in decimal: the root
// lists them. A cached segment without it (made by an older keel) counts
// as not cached.
const tmpfsBytesExt = ".tmpfs"

// segmentStore makes each segment's compressed file, or finds it in the
// cache.
type segmentStore struct {
	// dir caches segments by key; tmp holds the segments that cannot be
	// cached, for the length of the build.
	dir, tmp    string
	compression Compression
	mtime       int64
	stats       SegmentStats
	// task, when not nil, counts the cpio bytes written (Add) and the
	// compressed bytes made or reused (AddOut).
	task *progress.Task
}

// file returns the path of the compressed segment, making it if needed,
// and the memory its files take once unpacked (Archive.TmpfsBytes).
func (st *segmentStore) file(s segment) (string, int64, error) {
	dir, name := st.tmp, ""
	if s.key != "" && st.dir != "" && builderID() != "" {
		// The key covers the contents; compression and mtime change the
		// bytes too.
		dir = st.dir
		name = keyOf(s.key, builderID(), string(st.compression), strconv.FormatInt(st.mtime, 10)) + st.compression.Ext()
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil {
			if n, ok := readTmpfsBytes(p + tmpfsBytesExt); ok {
				st.stats.Reused++
				st.task.AddOut(info.Size())
				// The mtime says when a segment was last used, for pruning.
				now := time.Now()
				os.Chtimes(p, now, now)
				os.Chtimes(p+xattrWarningsExt, now, now)
				os.Chtimes(p+tmpfsBytesExt, now, now)
				if b, err := os.ReadFile(p + xattrWarningsExt); err == nil {
					st.stats.XattrWarnings = append(st.stats.XattrWarnings, strings.Split(strings.TrimSpace(string(b)), "\n")...)
				}
				return p, n, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", 0, fmt.Errorf("segment cache: %w", err)
		}
		// Private, as the image cache it normally lies in: a segment
		// found here goes into the initrd unchecked.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", 0, fmt.Errorf("segment cache %s: %w", dir, err)
		}
	}
	f, err := os.CreateTemp(dir, ".segment-*")
	if err != nil {
		return "", 0, fmt.Errorf("write segment %s: %w", s.name, err)
	}
	var info segmentInfo
	err = compressWith(st.compression, countingWriter{f, st.task.AddOut}, func(w io.Writer) (err error) {
		info, err = s.write(countingWriter{w, st.task.Add}, st.mtime)
		return err
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("write segment %s: %w", s.name, err)
	}
	st.stats.Written++
	warnings := info.xattrWarnings
	st.stats.XattrWarnings = append(st.stats.XattrWarnings, warnings...)
	if name == "" {
		return f.Name(), info.tmpfsBytes, nil
	}
	// The sidecars are written before the segment: whoever sees the
	// segment sees them, and whole (a torn list would drop warnings on
	// every later build).
	sidecars := []struct{ ext, text string }{{tmpfsBytesExt, strconv.FormatInt(info.tmpfsBytes, 10) + "\n"}}
	if len(warnings) > 0 {
		sidecars = append(sidecars, struct{ ext, text string }{xattrWarningsExt, strings.Join(warnings, "\n") + "\n"})
	}
	for _, sc := range sidecars {
		err := oci.WriteFileAtomic(filepath.Join(dir, name+sc.ext), 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, sc.text)
			return err
		})
		if err != nil {
			os.Remove(f.Name())
			return "", 0, fmt.Errorf("write segment %s: %w", s.name, err)
		}
	}
	// Renamed into place whole: a concurrent build sees the segment
	// complete or not at all, and two builds making it write equal bytes.
	p := filepath.Join(dir, name)
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("write segment %s: %w", s.name, err)
	}
	return p, info.tmpfsBytes, nil
}

// readTmpfsBytes reads a cached segment's tmpfsBytesExt file; ok is false
// when it is missing or not a number.
func readTmpfsBytes(p string) (n int64, ok bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n >= 0
}
