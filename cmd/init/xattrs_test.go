package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/xattrs"
	"golang.org/x/sys/unix"
)

// A bad manifest and files that refuse attributes are logged and counted,
// never fatal; good manifests after a bad one are still applied.
func TestApplyXattrsLogsAndGoesOn(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, xattrs.Dir)
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/tool"), nil, 0o755)
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.MkdirAll(dir, 0o755)
	// user.* is what an unprivileged test can set, where the filesystem
	// under the temporary directory takes it.
	userOK := unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "user.probe", []byte("1"), 0) == nil
	good, err := xattrs.Encode([]xattrs.Entry{
		{Path: "usr/bin/tool", Name: "user.keel", Value: []byte("v")},
		{Path: "usr/bin/gone", Name: "user.keel", Value: []byte("v")},
		{Path: "bin/tool", Name: "user.keel", Value: []byte("v")},
	})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "%2F"), []byte("keel-xattrs 1\n\"../x\" \"user.a\" \"v\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "%2Fz"), good, 0o644)

	var logs bytes.Buffer
	r := applyXattrsUnder(slog.New(slog.NewTextHandler(&logs, nil)), root)
	out := logs.String()
	for _, want := range []string{
		`msg="xattrs: manifest skipped" err="` + filepath.Join(dir, "%2F") + `: line 2 (\"../x\"): path \"../x\" leaves the root"`,
		`msg="xattr not set" path=/usr/bin/gone name=user.keel err="no such file or directory"`,
		`msg="xattr not set" path=/bin/tool name=user.keel err="parent bin is a symlink"`,
		`msg="xattrs applied with failures"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if r.badManifests != 1 || r.byReason["ENOENT"] != 1 || r.byReason["refused"] != 1 {
		t.Errorf("result %+v", r)
	}
	if userOK {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(root, "usr/bin/tool"), "user.keel", buf)
		if err != nil || string(buf[:n]) != "v" || r.set != 1 || r.failed != 2 {
			t.Errorf("user.keel: %q, %v; result %+v", buf[:n], err, r)
		}
	} else {
		t.Log("the temporary directory's filesystem takes no user.* attributes: only failures checked")
	}
}

func TestApplyXattrsWithoutManifests(t *testing.T) {
	var logs bytes.Buffer
	r := applyXattrsUnder(slog.New(slog.NewTextHandler(&logs, nil)), t.TempDir())
	if r.set != 0 || r.failed != 0 || logs.Len() != 0 {
		t.Errorf("result %+v, logs %s", r, logs.String())
	}
}
