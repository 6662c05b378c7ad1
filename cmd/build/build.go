package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/oci"
	"github.com/keel-os/keel/pkg/progress"
	"github.com/keel-os/keel/pkg/spec"
)

func newBuildCmd() *cobra.Command {
	var (
		name, dir, arch, lockFile string
		dryRun, pull              bool
		layouts                   []string
	)
	cmd := &cobra.Command{
		Use:   "build [flags] FILE.yml...",
		Short: "build a kernel, initrd and cmdline from YAML files",
		Long: `Merges the YAML files ("-" is standard input) in order, resolves every image (the --layout
directories first, then the local cache, then its registry) and writes NAME-kernel,
NAME-initrd.img and NAME-cmdline into the output directory, with NAME.lock.json, the
image digests the build used. A build of several files is named after the last one.`,
		Example: `  keel build examples/demo.yml --dir out
  keel build base.yml extra.yml --format tar-kernel-initrd
  generate-yaml | keel build --name sys -`,
		Args: wantArgs(1, -1, "a YAML file"),
	}
	fs := cmd.Flags()
	fs.StringVar(&name, "name", "", "`NAME` of the outputs (default: the last FILE without .yml)")
	fs.StringVar(&dir, "dir", ".", "`DIR` to write the outputs in")
	shown := addProgressFlags(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "check the YAML files and print them merged: pull and write nothing")
	fs.BoolVar(&pull, "pull", false, "pull every image again, even when the cache has it (a tag may have moved)")
	fs.StringVar(&arch, "arch", "amd64", "architecture (`ARCH`) to build for: amd64 or arm64 (picked from multi-platform images)")
	fs.StringVar(&lockFile, "lock", "", "build with exactly the image digests recorded in this lock `FILE` (NAME.lock.json of an earlier build)")
	fs.StringArrayVar(&layouts, "layout", nil, "take the images this OCI image layout `DIR` names from it, before the cache and any registry (repeatable)")
	output := addOutputFlags(fs)
	completeFlag(cmd, "arch", "amd64", "arm64")
	completeFlag(cmd, "progress", progress.Modes...)
	var formats, compressions []string
	for _, f := range initrd.Formats {
		formats = append(formats, string(f))
	}
	for _, c := range initrd.Compressions {
		compressions = append(compressions, string(c))
	}
	completeFlag(cmd, "format", formats...)
	completeFlag(cmd, "compress", compressions...)
	cmd.RunE = func(cmd *cobra.Command, files []string) error {
		if name == "" {
			name = outputName(files[len(files)-1])
		}
		if arch != "amd64" && arch != "arm64" {
			return usageErrorf(cmd, "--arch %q: want amd64 or arm64", arch)
		}
		if dryRun {
			if _, err := openLayouts(layouts); err != nil {
				return err
			}
			return printMerged(cmd.OutOrStdout(), files)
		}
		display := shown.display(os.Stdout, os.Stderr)
		// Closed before main prints an error: no live line is left under it.
		defer display.Close()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return buildRepairing(ctx, files, initrd.Outputs{Dir: dir, Name: name}, buildOptions{progress: display, tasks: display, pull: pull, output: output, arch: arch, lock: lockFile, layouts: layouts})
	}
	return cmd
}

// buildOptions are the flags of keel build that are not about outputs.
type buildOptions struct {
	// progress gets the lines that stay: images, outputs.
	progress io.Writer
	// tasks, when not nil, shows pulls and writes as they go.
	tasks *progress.Display
	// pull fetches every image from its registry even when cached.
	pull bool
	// arch is the architecture built for; "" is amd64.
	arch string
	// lock, when set, is a lock file whose digests the images resolve to.
	lock string
	// layouts are OCI layout directories searched before the cache.
	layouts []string
	// output holds the formats and compression; nil means the defaults
	// and no segment cache.
	output *outputOptions
}

// outputName is the default name of a YAML file's outputs: its base name
// without the .yml or .yaml extension.
func outputName(file string) string {
	if file == config.Stdin {
		return "stdin"
	}
	base := filepath.Base(file)
	for _, ext := range []string{".yml", ".yaml"} {
		if s, ok := strings.CutSuffix(base, ext); ok && s != "" {
			return s
		}
	}
	return base
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE.yml...",
		Short: "check YAML files without building them",
		Long:  "Checks YAML files, merged in order, without pulling or building anything.",
		Args:  wantArgs(1, -1, "a YAML file"),
		RunE: func(_ *cobra.Command, files []string) error {
			return validateFiles(files)
		},
	}
}

// printMerged checks YAML files as validate does, then prints their merged
// configuration as YAML, as linuxkit build --dry-run does.
func printMerged(w io.Writer, files []string) error {
	cfg, err := loadConfig(files)
	if err != nil {
		return err
	}
	b, err := cfg.Metadata("yaml")
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// validateFiles loads (and merges) YAML files without building them.
func validateFiles(files []string) error {
	cfg, err := loadConfig(files)
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok (%d onboot, %d onshutdown, %d services, %d files)\n", strings.Join(files, " + "),
		len(cfg.Onboot), len(cfg.Onshutdown), len(cfg.Services), len(cfg.Files))
	return nil
}

// loadConfig loads and merges YAML files and prints their warnings.
func loadConfig(files []string) (*config.Config, error) {
	cfg, err := config.Load(files...)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(os.Stderr, "keel: warning: %s\n", w)
	}
	return cfg, nil
}

// build runs the pipeline: parse and validate, resolve every image, make
// each bundle's runtime spec, then write the outputs.
func build(ctx context.Context, files []string, out initrd.Outputs, opts buildOptions) error {
	progress := opts.progress
	if progress == nil {
		progress = io.Discard
	}
	file := strings.Join(files, " + ")
	cfg, err := loadConfig(files)
	if err != nil {
		return err
	}
	mtime, err := initrd.Mtime()
	if err != nil {
		return err
	}
	cache, err := oci.OpenCache(oci.DefaultCacheDir())
	if err != nil {
		return err
	}
	layouts, err := openLayouts(opts.layouts)
	if err != nil {
		return err
	}
	resolver := &oci.Resolver{Cache: cache, Progress: progress, Tasks: opts.tasks, Layouts: layouts}
	if opts.arch != "" {
		resolver.Platform = v1.Platform{OS: "linux", Architecture: opts.arch}
	}
	r := &images{resolver: resolver, progress: progress, pull: opts.pull, kernel: cfg.Kernel.Image}
	if opts.lock != "" {
		l, err := oci.ReadLock(opts.lock)
		if err != nil {
			return err
		}
		r.locked = l.Images
	}
	if err := r.resolveAll(ctx, cfg); err != nil {
		return err
	}

	kernel, err := r.get(ctx, cfg.Kernel.Image, cfg.Kernel.Pos)
	if err != nil {
		return err
	}
	var c initrd.Contents
	ids := cfg.IDs()
	for _, ref := range cfg.Init {
		img, err := r.get(ctx, ref.Ref, ref.Pos)
		if err != nil {
			return err
		}
		c.Init = append(c.Init, img)
		if cf, err := img.Image.ConfigFile(); err == nil && bundle.HasFeature(cf.Config.Labels, bundle.FeatureRootfsLower) {
			c.Overlays = true
		}
	}
	deps, err := r.dependencies(ctx, cfg)
	if err != nil {
		return err
	}
	for _, list := range []struct {
		kind   bundle.Kind
		field  string
		images []config.Image
	}{
		{bundle.Onboot, "onboot", cfg.Onboot},
		{bundle.Onshutdown, "onshutdown", cfg.Onshutdown},
		{bundle.Service, "services", cfg.Services},
	} {
		for i, entry := range list.images {
			if list.kind == bundle.Service {
				entry.DependsOn = deps[i] // resolved, conditions set
			}
			b, err := r.bundle(ctx, list.kind, i, entry, ids)
			if err != nil {
				return fmt.Errorf("%s: %s[%d] %s: %w", entry.Pos, list.field, i, entry.Name, err)
			}
			c.Bundles = append(c.Bundles, b)
		}
	}
	if c.Files, err = cfg.ResolveFiles(); err != nil {
		return err
	}

	var stats initrd.SegmentStats
	b := initrd.Build{Kernel: kernel, Cmdline: cfg.Kernel.Cmdline, Contents: c, Mtime: mtime, Stats: &stats, Progress: opts.tasks,
		KernelFiles: initrd.KernelFiles{Binary: cfg.Kernel.Binary, Tar: cfg.Kernel.TarName(), UCode: cfg.Kernel.UCodeName()}}
	opts.output.apply(&out, &b, cache.Dir)
	diskFiles, err := opts.output.write(out, b, func(ref string) (initrd.Image, error) { return r.get(ctx, ref, config.Pos{File: "-boot-image"}) })
	if err != nil {
		return fmt.Errorf("build %s: %w", file, err)
	}
	lock := oci.Lock{Keel: keelVersion(), Arch: opts.arch, Kernel: cfg.Kernel.Image, Images: map[string]string{}}
	if lock.Arch == "" {
		lock.Arch = "amd64"
	}
	for ref, img := range r.seen {
		d, err := img.Image.Digest()
		if err != nil {
			return fmt.Errorf("digest of %s: %w", ref, err)
		}
		lock.Images[ref] = d.String()
	}
	lockFile := filepath.Join(out.Dir, out.Name+".lock.json")
	if err := oci.WriteLock(lockFile, lock); err != nil {
		return err
	}
	reportOutputs(progress, out, stats, diskFiles, lockFile)
	return nil
}

// openLayouts opens the --layout directories.
func openLayouts(dirs []string) ([]*oci.Layout, error) {
	var out []*oci.Layout
	for _, d := range dirs {
		l, err := oci.OpenLayout(d)
		if err != nil {
			return nil, fmt.Errorf("--layout: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// pullConcurrency is how many images are fetched at once.
const pullConcurrency = 4

// images resolves each reference once per build.
type images struct {
	resolver *oci.Resolver
	progress io.Writer
	pull     bool
	// locked maps a reference to the digest a lock file pins it to.
	locked map[string]string
	// kernel is the kernel image's reference. Its layers are checked
	// against their digests when it is resolved: the initrd writer reads
	// it with mutate.Extract, which drops a digest mismatch found at the
	// end of the read.
	kernel string
	mu     sync.Mutex
	seen   map[string]initrd.Image
}

// resolveAll resolves every image of the configuration, several at a time,
// so that a cold cache fills in parallel. Each image is then printed once,
// in YAML order.
func (r *images) resolveAll(ctx context.Context, cfg *config.Config) error {
	type use struct {
		ref string
		pos config.Pos
	}
	uses := []use{{cfg.Kernel.Image, cfg.Kernel.Pos}}
	for _, i := range cfg.Init {
		uses = append(uses, use{i.Ref, i.Pos})
	}
	for _, list := range [][]config.Image{cfg.Onboot, cfg.Onshutdown, cfg.Services} {
		for _, img := range list {
			uses = append(uses, use{img.Image, img.Pos})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pullConcurrency)
	first := map[string]bool{}
	var order []string
	for _, u := range uses {
		if first[u.ref] {
			continue
		}
		first[u.ref] = true
		order = append(order, u.ref)
		g.Go(func() error {
			_, err := r.resolve(gctx, u.ref, u.pos)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, ref := range order {
		digest, err := r.seen[ref].Image.Digest()
		if err != nil {
			return fmt.Errorf("digest of %s: %w", ref, err)
		}
		fmt.Fprintf(r.progress, "image %s %s\n", ref, digest)
	}
	return nil
}

// get returns a resolved image, resolving it now if resolveAll did not.
func (r *images) get(ctx context.Context, ref string, pos config.Pos) (initrd.Image, error) {
	r.mu.Lock()
	img, ok := r.seen[ref]
	r.mu.Unlock()
	if ok {
		return img, nil
	}
	return r.resolve(ctx, ref, pos)
}

func (r *images) resolve(ctx context.Context, ref string, pos config.Pos) (initrd.Image, error) {
	name := ref
	if r.locked != nil {
		d, ok := r.locked[ref]
		if !ok {
			return initrd.Image{}, fmt.Errorf("%s: image %s is not in the lock file", pos, ref)
		}
		var err error
		if name, err = oci.Pinned(ref, d); err != nil {
			return initrd.Image{}, fmt.Errorf("%s: %w", pos, err)
		}
	}
	if r.pull {
		if err := r.resolver.Refresh(ctx, name); err != nil {
			return initrd.Image{}, fmt.Errorf("%s: %w", pos, err)
		}
	}
	resolve := r.resolver.Image
	if ref == r.kernel {
		resolve = r.resolver.WholeImage
	}
	img, err := resolve(ctx, name)
	if err != nil {
		return initrd.Image{}, fmt.Errorf("%s: %w", pos, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]initrd.Image{}
	}
	r.seen[ref] = initrd.Image{Ref: ref, Image: img}
	return r.seen[ref], nil
}

// dependencies checks the services' depends_on with their images' labels
// merged in (a label may give a healthcheck or depends_on) and resolves
// each short form's condition.
func (r *images) dependencies(ctx context.Context, cfg *config.Config) ([]config.Dependencies, error) {
	merged := make([]config.Image, len(cfg.Services))
	for i, entry := range cfg.Services {
		img, err := r.get(ctx, entry.Image, entry.Pos)
		if err != nil {
			return nil, err
		}
		if merged[i], err = spec.WithLabel(entry, img.Image); err != nil {
			return nil, fmt.Errorf("%s: services[%d] %s: %w", entry.Pos, i, entry.Name, err)
		}
	}
	return cfg.ResolveDependencies(merged)
}

// bundle resolves one onboot, onshutdown or service entry and makes its
// runtime spec from the entry and the image.
func (r *images) bundle(ctx context.Context, kind bundle.Kind, index int, entry config.Image, ids map[string]uint32) (initrd.Bundle, error) {
	img, err := r.get(ctx, entry.Image, entry.Pos)
	if err != nil {
		return initrd.Bundle{}, err
	}
	spec, runtime, err := spec.Specs(kind, entry, img.Image, ids)
	if err != nil {
		return initrd.Bundle{}, err
	}
	return initrd.Bundle{
		Kind:    kind,
		Dir:     bundle.DirName(kind, index, entry.Name),
		Image:   img,
		Config:  spec,
		Runtime: runtime,
	}, nil
}
