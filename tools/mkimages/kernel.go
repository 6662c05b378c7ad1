package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/kmod"
)

// kernelDeb is the Debian package a kernel ABI comes from.
func kernelDeb(abi string) string { return "linux-image-" + abi + "-cloud-amd64" }

// makeKernel makes keel/kernel:<abi> (lean module set) and
// keel/kernel:<abi>-full (every module) from Debian's cloud kernel, in
// LinuxKit's kernel image layout: /kernel is the bzImage and /kernel.tar a
// tar of lib/modules/<release>.
func makeKernel(ctx context.Context, b *builder) error {
	abi := b.versions.KernelABI
	name := kernelDeb(abi)
	deb, cached, err := fetchDeb(ctx, b.downloadsDir(), name)
	if errors.Is(err, errNoPackage) {
		return fmt.Errorf("%s is not in the apt archive (Debian drops old kernel ABIs): "+
			"bump KERNEL_ABI in %s; the archive has: %s", name, b.versionsFile, availableKernels(ctx))
	}
	if err != nil {
		return err
	}
	b.step("kernel", "%s %s (%s)", name, deb.Version, fetchedOrCached(cached))

	root := filepath.Join(b.work, "kernel")
	err = extractDeb(deb.Path, root, func(n string) bool {
		return n == "boot" || strings.HasPrefix(n, "boot/vmlinuz-") || n == "lib" || strings.HasPrefix(n, "lib/modules")
	})
	if err != nil {
		return fmt.Errorf("unpack kernel: %w", err)
	}
	release, err := kernelRelease(root)
	if err != nil {
		return err
	}
	bzImage := filepath.Join(root, "boot", "vmlinuz-"+release)
	modDir := filepath.Join(root, "lib", "modules", release)

	tree, err := kmod.LoadTree(os.DirFS(modDir))
	if err != nil {
		return fmt.Errorf("kernel %s: %w", release, err)
	}
	lean, err := tree.Closure(kmod.LeanModules...)
	if err != nil {
		return fmt.Errorf("kernel %s: lean module set: %w", release, err)
	}
	for _, m := range lean {
		if r := m.Info.Release(); r != release {
			return fmt.Errorf("kernel %s: module %s was built for %q", release, m.Path, r)
		}
	}
	var builtin []string
	for _, n := range kmod.LeanModules {
		if tree.IsBuiltin(n) {
			builtin = append(builtin, n)
		}
	}
	b.step("kernel", "%s: %d of %d modules in the lean set (built in: %s)",
		release, len(lean), len(tree.Modules()), strings.Join(builtin, ", "))

	// The files beside the modules (modules.order, modules.builtin,
	// modules.builtin.modinfo) say what is built in and the order to
	// probe; both images keep them.
	var leanFiles, allFiles []string
	for _, m := range lean {
		leanFiles = append(leanFiles, m.Path)
	}
	err = filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(modDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		allFiles = append(allFiles, rel)
		if !strings.Contains(rel, "/") && strings.HasPrefix(rel, "modules.") {
			leanFiles = append(leanFiles, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list modules of %s: %w", release, err)
	}

	for _, img := range []struct {
		tag   string
		files []string
	}{
		{abi, leanFiles},
		{abi + "-full", allFiles},
	} {
		ref := "keel/kernel:" + img.tag
		if err := b.kernelImage(ref, bzImage, modDir, release, img.files); err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
	}
	return nil
}

// kernelImage writes the image ref holding bzImage and the given files of
// the module tree.
func (b *builder) kernelImage(ref, bzImage, modDir, release string, files []string) error {
	modules := newTree()
	if err := modules.dir("lib/modules/"+release, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := modules.file(path.Join("lib/modules", release, f), 0o644, filepath.Join(modDir, f)); err != nil {
			return err
		}
	}
	kernelTar := filepath.Join(b.work, "kernel-"+strings.ReplaceAll(ref, "/", "_")+".tar")
	size, err := modules.writeTarFile(kernelTar, b.mtime)
	if err != nil {
		return fmt.Errorf("write kernel.tar: %w", err)
	}

	layer := newTree()
	if err := layer.file("kernel", 0o644, bzImage); err != nil {
		return err
	}
	if err := layer.file("kernel.tar", 0o644, kernelTar); err != nil {
		return err
	}
	digest, _, err := b.putImage(ref, layer, v1.Config{})
	if err != nil {
		return err
	}
	b.step("kernel", "%s %s (%s modules)", ref, digest, megabytes(size))
	return nil
}

// kernelRelease finds the one release under lib/modules and checks its
// bzImage is there.
func kernelRelease(root string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return "", fmt.Errorf("kernel package has no modules: %w", err)
	}
	if len(entries) != 1 {
		return "", fmt.Errorf("kernel package has %d module trees, want 1", len(entries))
	}
	release := entries[0].Name()
	if _, err := os.Stat(filepath.Join(root, "boot", "vmlinuz-"+release)); err != nil {
		return "", fmt.Errorf("kernel package has no bzImage for %s: %w", release, err)
	}
	return release, nil
}

// availableKernels lists what the cloud kernel metapackage depends on
// today, for the error message when the pinned ABI is gone.
func availableKernels(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-cloud-amd64").Output()
	if err != nil {
		return "nothing (apt-cache depends linux-image-cloud-amd64 failed; run apt-get update)"
	}
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok {
			deps = append(deps, dep)
		}
	}
	if len(deps) == 0 {
		return "nothing (run apt-get update)"
	}
	return "linux-image-cloud-amd64 depends on " + strings.Join(deps, ", ")
}
