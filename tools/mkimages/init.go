package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
)

// containerdTags leave out of containerd what a VM with no Kubernetes, no
// image pulls and no other snapshotters never uses: containerd alone goes
// from 39.4 to 31.3 MB. They are for the baseline's three programs;
// keel's PID 1 names the plugins it carries (pkg/containerdcmd).
const containerdTags = "no_cri,no_devmapper,no_zfs,no_tracing,no_btrfs"

// runcTool is runc at its pinned version, from the module proxy. It links
// libseccomp statically; netgo and osusergo keep glibc's NSS, which cannot
// work static, out of it. keel/init does not carry it (its OCI runtime is
// crun, see crun.go); the root tests and the boot benchmark's baseline
// run it from the tools cache.
func runcTool(v *versions) goTool {
	return goTool{
		Name:    "runc",
		Module:  "github.com/opencontainers/runc",
		Version: v.Runc,
		Pkgs:    []string{""},
		Cgo:     true,
		Tags:    "seccomp,netgo,osusergo",
		Ldflags: staticCgoLdflags,
	}
}

// containerdTools are containerd, ctr and the shim as the three programs
// containerd's own build makes, with keel's tags. keel/init does not carry
// them (its PID 1 binary is all three, see pkg/containerdcmd); the boot
// benchmark's baseline does, as the design keel replaces ships them.
func containerdTools(v *versions) goTool {
	return goTool{
		Name:    "containerd",
		Module:  "github.com/containerd/containerd/v2",
		Version: v.Containerd,
		Pkgs:    []string{"cmd/containerd", "cmd/ctr", "cmd/containerd-shim-runc-v2"},
		Tags:    containerdTags,
		Ldflags: "-s -w",
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
// and under the names containerd, ctr and the runc shim in /usr/bin (one
// binary, hard links), crun, the OCI runtime, in /usr/bin, the small init
// of kernel+squashfs initrds (bundle.SquashfsInitFile), busybox for the
// console shell, and the directories the system needs. runc is built too,
// into the tools cache only.
func makeInit(ctx context.Context, b *builder) error {
	t := newTree()
	for _, d := range systemDirs {
		if err := t.dir(d.name, d.mode); err != nil {
			return err
		}
	}

	// PID 1 is keel's own code: always rebuilt, and quick once Go's build
	// cache holds containerd. The same binary is containerd, ctr and the
	// shim (pkg/containerdcmd), by hard links in /usr/bin.
	start := time.Now()
	pid1, err := b.buildPID1(ctx)
	if err != nil {
		return err
	}
	b.step("init", "built PID 1 (with containerd, ctr and the shim %s) from ./cmd/init in %s", b.versions.Containerd, since(start))
	if err := t.file("init", 0o755, filepath.Join(pid1, "init")); err != nil {
		return err
	}
	if err := t.hardlink("sbin/init", "init"); err != nil {
		return err
	}
	for _, name := range initNames {
		if err := t.hardlink("usr/bin/"+name, "init"); err != nil {
			return err
		}
	}
	// kernel+squashfs builds take it for their small initrd's /init; the
	// system's tree leaves it out.
	if err := t.file(bundle.SquashfsInitFile, 0o755, filepath.Join(pid1, squashfsInitName)); err != nil {
		return err
	}
	// Run as "keel", PID 1's binary is the console's status command.
	if err := t.symlink("usr/bin/keel", "/init"); err != nil {
		return err
	}

	// crun is the image's OCI runtime: it creates and starts a container
	// in a quarter of runc's time under emulation. runc stays out of the
	// image but is built all the same, for the root tests.
	crun, err := b.ensureCrun(ctx, "init")
	if err != nil {
		return err
	}
	if err := t.file("usr/bin/crun", 0o755, filepath.Join(crun, "crun")); err != nil {
		return err
	}
	if _, err := b.ensureTool(ctx, "init", runcTool(b.versions)); err != nil {
		return err
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

// makeBenchTools builds no image: it puts the baseline's programs of
// `make bench-boot` (tools/benchboot) in the tools cache, containerd, ctr
// and the shim as three binaries and runc, all with keel's versions and
// tags. They are asked for by name (-only bench-tools), not by default.
func makeBenchTools(ctx context.Context, b *builder) error {
	for _, tool := range []goTool{containerdTools(b.versions), runcTool(b.versions)} {
		if _, err := b.ensureTool(ctx, "bench-tools", tool); err != nil {
			return err
		}
	}
	return nil
}

// buildPID1 builds PID 1 (buildInit) into the tools cache's keelInitDir,
// which the root tests run containerd and the shim from, and returns that
// directory.
func (b *builder) buildPID1(ctx context.Context) (string, error) {
	toolsDir := b.toolsDir()
	if err := os.MkdirAll(toolsDir, 0o755); err != nil {
		return "", err
	}
	removeStale(toolsDir, "."+keelInitDir+"-*")
	tmp, err := os.MkdirTemp(toolsDir, "."+keelInitDir+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := buildInit(ctx, b.src, tmp, b.versions.Containerd); err != nil {
		return "", err
	}
	dir := filepath.Join(toolsDir, keelInitDir)
	stamp := fmt.Sprintf("keel=%s\ncontainerd=%s\nldflags=%s\n", b.versions.Keel, b.versions.Containerd, initLdflags(b.versions.Containerd))
	if err := storeTool(tmp, dir, stamp); err != nil {
		return "", fmt.Errorf("store PID 1 in the tools cache: %w", err)
	}
	return dir, nil
}
