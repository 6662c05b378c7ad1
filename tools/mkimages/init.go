package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
)

// initTools are the programs keel/init carries besides PID 1, each built
// from the module proxy at its pinned version.
func initTools(v *versions) []goTool {
	return []goTool{
		{
			Name:    "containerd",
			Module:  "github.com/containerd/containerd/v2",
			Version: v.Containerd,
			Pkgs:    []string{"cmd/containerd", "cmd/ctr", "cmd/containerd-shim-runc-v2"},
			// What a VM with no Kubernetes, no image pulls and no other
			// snapshotters never uses: containerd 39.4 -> about 31 MB.
			Tags:    "no_cri,no_devmapper,no_zfs,no_tracing,no_btrfs",
			Ldflags: "-s -w",
		},
		{
			// runc links libseccomp statically; netgo and osusergo keep
			// glibc's NSS, which cannot work static, out of it.
			Name:    "runc",
			Module:  "github.com/opencontainers/runc",
			Version: v.Runc,
			Pkgs:    []string{""},
			Cgo:     true,
			Tags:    "seccomp,netgo,osusergo",
			Ldflags: staticCgoLdflags,
		},
	}
}

// systemDirs are the empty directories PID 1 mounts on or writes to.
var systemDirs = []struct {
	name string
	mode int64
}{
	{"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"run", 0o755},
	{"tmp", 0o1777}, {"var", 0o755}, {"etc", 0o755}, {"etc/keel", 0o755},
	{"root", 0o700},
}

// makeInit makes keel/init:<KEEL_VERSION>: PID 1 at /init and /sbin/init,
// containerd, ctr, the runc shim and runc in /usr/bin, busybox for the
// console shell, and the directories the system needs.
func makeInit(ctx context.Context, b *builder) error {
	t := newTree()
	for _, d := range systemDirs {
		if err := t.dir(d.name, d.mode); err != nil {
			return err
		}
	}

	// PID 1 is keel's own code: always rebuilt, and quick.
	start := time.Now()
	pid1 := filepath.Join(b.work, "init")
	if err := buildInit(ctx, b.src, pid1); err != nil {
		return err
	}
	b.step("init", "built PID 1 from ./cmd/init in %s", since(start))
	if err := t.file("init", 0o755, pid1); err != nil {
		return err
	}
	if err := t.hardlink("sbin/init", "init"); err != nil {
		return err
	}
	// Run as "keel", PID 1's binary is the console's status command.
	if err := t.symlink("usr/bin/keel", "/init"); err != nil {
		return err
	}

	for _, tool := range initTools(b.versions) {
		start := time.Now()
		dir, built, err := tool.ensure(ctx, b.toolsDir())
		if err != nil {
			return err
		}
		if built {
			b.step("init", "built %s %s in %s", tool.Name, tool.Version, since(start))
		} else {
			b.step("init", "%s %s from the tools cache", tool.Name, tool.Version)
		}
		for _, bin := range tool.binaries() {
			if err := t.file("usr/bin/"+bin, 0o755, filepath.Join(dir, bin)); err != nil {
				return err
			}
		}
	}

	bb, err := b.busybox(ctx)
	if err != nil {
		return err
	}
	// keel's PID 1 is the init: busybox's init applets stay out.
	if err := bb.addTo(t, "linuxrc", "sbin/init"); err != nil {
		return err
	}

	ref := "keel/init:" + b.versions.Keel
	// What keel build may rely on this PID 1 to do (bundle.InitFeaturesLabel).
	features := map[string]string{bundle.InitFeaturesLabel: bundle.FeatureRootfsLower}
	digest, st, err := b.putImage(ref, t, v1.Config{Labels: features})
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	b.step("init", "%s %s (%s uncompressed)", ref, digest, megabytes(st.Uncompressed))
	return nil
}
