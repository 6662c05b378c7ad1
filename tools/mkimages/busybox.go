package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// busybox is Debian's static busybox, unpacked for this run.
type busybox struct {
	Path    string   // the binary on disk
	Version string   // the Debian package version
	Applets []string // where its applets go: "bin/sh", "usr/bin/awk", ...
}

// busybox returns Debian's busybox-static, fetching and unpacking it the
// first time a run asks for it (keel/init and keel/busybox both hold it).
func (b *builder) busybox(ctx context.Context) (*busybox, error) {
	if b.bb != nil {
		return b.bb, nil
	}
	deb, cached, err := fetchDeb(ctx, b.downloadsDir(), "busybox-static")
	if err != nil {
		return nil, err
	}
	if up := deb.UpstreamVersion(); up != b.versions.BusyboxTag && !strings.HasPrefix(up, b.versions.BusyboxTag+".") {
		return nil, fmt.Errorf("busybox-static in the archive is %s, but BUSYBOX_TAG is %s: bump BUSYBOX_TAG in %s",
			deb.Version, b.versions.BusyboxTag, b.versionsFile)
	}
	b.step("busybox", "busybox-static %s (%s)", deb.Version, fetchedOrCached(cached))

	dir := filepath.Join(b.work, "busybox")
	if err := extractDeb(deb.Path, dir, func(n string) bool { return n == "bin" || n == "bin/busybox" }); err != nil {
		return nil, fmt.Errorf("unpack busybox: %w", err)
	}
	bb := &busybox{Path: filepath.Join(dir, "bin", "busybox"), Version: deb.Version}
	// The binary itself knows where each applet belongs. It is static and
	// built for this host's architecture, so it can simply be asked.
	out, err := exec.CommandContext(ctx, bb.Path, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets (%s --list-full): %w", bb.Path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if a := strings.TrimSpace(line); a != "" {
			bb.Applets = append(bb.Applets, a)
		}
	}
	sort.Strings(bb.Applets)
	if len(bb.Applets) == 0 {
		return nil, fmt.Errorf("busybox %s lists no applets", bb.Path)
	}
	b.bb = bb
	return bb, nil
}

// addTo puts /bin/busybox and a symlink to it for each applet into t,
// except for applets whose path t already holds or skip names.
func (bb *busybox) addTo(t *tree, skip ...string) error {
	if err := t.file("bin/busybox", 0o755, bb.Path); err != nil {
		return err
	}
	for _, a := range bb.Applets {
		if a == "bin/busybox" || t.has(a) || contains(skip, a) {
			continue
		}
		if err := t.symlink(a, "/bin/busybox"); err != nil {
			return fmt.Errorf("busybox applet %s: %w", a, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// makeBusybox makes keel/busybox:<tag>: busybox with its applets, a root
// user and /tmp; a small general image for examples and tests.
func makeBusybox(ctx context.Context, b *builder) error {
	bb, err := b.busybox(ctx)
	if err != nil {
		return err
	}
	t := newTree()
	if err := bb.addTo(t); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"tmp", 0o1777}, {"root", 0o700}, {"etc", 0o755}} {
		if err := t.dir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := t.data("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")); err != nil {
		return err
	}
	if err := t.data("etc/group", 0o644, []byte("root:x:0:\n")); err != nil {
		return err
	}
	ref := "keel/busybox:" + b.versions.BusyboxTag
	digest, st, err := b.putImage(ref, t, v1.Config{
		Cmd: []string{"/bin/sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	b.step("busybox", "%s %s (%s uncompressed)", ref, digest, megabytes(st.Uncompressed))
	return nil
}
