package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keel-os/keel/pkg/xattrs"
	"golang.org/x/sys/unix"
)

// maxXattrFailuresShown bounds the per-file lines on the console: on a
// kernel older than 6.6 every user.* attribute fails the same way, and a
// serial console is slow. The summary line counts them all.
const maxXattrFailuresShown = 10

// xattrResult counts what applying the manifests did.
type xattrResult struct {
	set, failed, badManifests int
	// byReason counts failures by errno name ("EOPNOTSUPP"), or "refused"
	// for a path the Applier would not follow.
	byReason map[string]int
}

// applyXattrs sets the extended attributes the build recorded in
// /etc/keel/xattrs.d (the initrd cannot carry them: see pkg/xattrs). It
// runs once / is the final root and before anything is mounted over it,
// so the manifests' paths are the initrd's files, and before any container
// starts, so ping has its capability when a service runs it. Nothing here
// stops the boot: a bad manifest or a file that refuses an attribute is
// logged and skipped.
func applyXattrs(log *slog.Logger) { applyXattrsUnder(log, "/") }

func applyXattrsUnder(log *slog.Logger, root string) xattrResult {
	r := xattrResult{byReason: map[string]int{}}
	dir := filepath.Join(root, xattrs.Dir)
	files, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		log.Debug("xattrs: no manifests", "dir", dir)
		return r
	}
	if err != nil {
		log.Error("xattrs: not applied", "err", err)
		return r
	}
	ap, err := xattrs.NewApplier(root)
	if err != nil {
		log.Error("xattrs: not applied", "err", err)
		return r
	}
	for _, f := range files { // sorted by name
		file := filepath.Join(dir, f.Name())
		entries, err := xattrs.ReadFile(file)
		if err != nil {
			r.badManifests++
			log.Error("xattrs: manifest skipped", "err", err)
			continue
		}
		for _, e := range entries {
			err := ap.Apply(e)
			if err == nil {
				r.set++
				continue
			}
			r.failed++
			reason := "refused"
			if errno := unix.Errno(0); errors.As(err, &errno) {
				reason = unix.ErrnoName(errno)
			}
			r.byReason[reason]++
			if r.failed <= maxXattrFailuresShown {
				// The path and name are fields of their own: the line
				// says each once.
				why := err
				if ae := (*xattrs.ApplyError)(nil); errors.As(err, &ae) {
					why = ae.Err
				}
				log.Warn("xattr not set", "path", "/"+e.Path, "name", e.Name, "err", why)
			}
		}
	}
	if r.failed > 0 || r.badManifests > 0 {
		log.Warn("xattrs applied with failures", "set", r.set, "failed", r.failed,
			"reasons", reasons(r.byReason), "bad_manifests", r.badManifests)
	} else {
		log.Info("xattrs applied", "set", r.set, "manifests", len(files))
	}
	return r
}

// reasons renders failure counts as "EOPNOTSUPP:12,refused:1", sorted.
func reasons(m map[string]int) string {
	var out []string
	for k, n := range m {
		out = append(out, k+":"+strconv.Itoa(n))
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}
