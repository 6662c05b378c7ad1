package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/keel-os/keel/pkg/oci"
)

// cleanMinAge spares unreferenced blobs younger than this: they may
// belong to a pull in flight whose index entry is not written yet.
const cleanMinAge = 10 * time.Minute

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache COMMAND",
		Short: "manage the local image cache: ls, pull, push, import, export, rm, clean",
		Long:  "Manages the local image cache ($KEEL_CACHE, default ~/.cache/keel), an OCI image layout.",
	}
	groupCommand(cmd)
	cmd.AddCommand(newCacheLsCmd(), newCachePullCmd(), newCachePushCmd(), newCacheImportCmd(), newCacheExportCmd(),
		newCacheRmCmd(), newCacheCleanCmd())
	return cmd
}

// openCache opens the cache keel build uses.
func openCache() (*oci.Cache, error) {
	return oci.OpenCache(oci.DefaultCacheDir())
}

// parseArch checks an --arch value and makes it a platform.
func parseArch(cmd *cobra.Command, arch string) (v1.Platform, error) {
	if arch != "amd64" && arch != "arm64" {
		return v1.Platform{}, usageErrorf(cmd, "--arch %q: want amd64 or arm64", arch)
	}
	return v1.Platform{OS: "linux", Architecture: arch}, nil
}

func newCacheLsCmd() *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls [-l]",
		Short: "list the cached images",
		Long: `Lists the images in the local cache, one reference per line; with -l, a table with a
header: each image's reference, platform, total size (manifest, config and layers)
and manifest digest.`,
		Args: wantArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			list, err := cache.List()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !long {
				for _, img := range list {
					fmt.Fprintln(w, img.Ref)
				}
				return nil
			}
			info, err := cache.ListInfo()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tPLATFORM\tSIZE\tDIGEST")
			for _, img := range info {
				platform := img.Platform
				if platform == "" {
					platform = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Ref, platform, units.HumanSize(float64(img.TotalSize)), img.Digest)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "print a table with each image's platform, total size and digest")
	return cmd
}

func newCacheRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm REF...",
		Short: "drop images from the cache's index (clean frees their blobs)",
		Args:  wantArgs(1, -1, "an image reference"),
		RunE: func(_ *cobra.Command, refs []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if err := cache.Remove(ref); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newCacheCleanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "delete the blobs no cached image uses; report the bytes freed",
		Args:  wantArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			n, freed, err := cache.Clean(cleanMinAge)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs, %d bytes freed\n", n, freed)
			return nil
		},
	}
}

func newCacheImportCmd() *cobra.Command {
	var tag, arch string
	cmd := &cobra.Command{
		Use:   "import [--tag REF] [--arch amd64|arm64] FILE.tar|DIR|-",
		Short: "store the images of an OCI layout (directory or tar) or a docker-archive tar in the cache",
		Long: `Stores the images of an image source in the cache, every blob checked against its digest:
an OCI image layout directory (oci-layout, index.json, blobs/), a tar of one (skopeo
oci-archive:, docker save of Docker 25+), or a docker-archive tar (docker save); the
format is read from the content.

Each image is stored under its name: the io.containerd.image.name annotation, else
org.opencontainers.image.ref.name when it is a full reference, else a bare tag T gets
the layout's base name: DIR (or FILE without .tar) + ":" + T. --tag names a source
holding one image. "-" reads the tar from standard input (a bare tag T is then
named stdin:T).`,
		Example: `  keel cache import alpine.tar
  docker save alpine:3.20 | keel cache import -
  keel cache import --tag keel/kernel:dev ./kernel-layout`,
		Args: wantArgs(1, 1, "one FILE.tar, layout DIR or -"),
		RunE: func(cmd *cobra.Command, args []string) error {
			platform, err := parseArch(cmd, arch)
			if err != nil {
				return err
			}
			cache, err := openCache()
			if err != nil {
				return err
			}
			var names []string
			if args[0] == "-" {
				names, err = cache.ImportReader(cmd.InOrStdin(), tag, platform)
			} else {
				names, err = cache.Import(args[0], tag, platform)
			}
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), "imported", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tag, "tag", "", "store the source's one image under this reference")
	cmd.Flags().StringVar(&arch, "arch", "amd64", "platform to take from a multi-platform index: amd64 or arm64")
	return cmd
}

func newCacheExportCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export [--format oci|docker-archive] REF FILE.tar|-",
		Short: "write a cached image as an OCI layout tar or a docker-archive tar",
		Long: `Writes a cached image as a tar that keel cache import, docker load (docker-archive, or oci
for Docker 25 and later) and skopeo (oci-archive:) read. "-" writes to standard output.
A file is written whole or not at all, with mode 0644.`,
		Example: `  keel cache export keel/busybox:1.36 busybox.tar
  keel cache export --format oci keel/busybox:1.36 - | ssh host keel cache import -`,
		Args: wantArgs(2, 2, "REF FILE.tar (or - for standard output)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := oci.ParseArchiveFormat(format)
			if err != nil {
				return usageError{err, cmd.CommandPath()}
			}
			cache, err := openCache()
			if err != nil {
				return err
			}
			if args[1] == "-" {
				return cache.WriteArchive(cmd.OutOrStdout(), args[0], f)
			}
			return cache.Export(args[0], args[1], f)
		},
	}
	cmd.Flags().StringVar(&format, "format", string(oci.DockerArchive), "archive format: oci (an OCI image layout tar) or docker-archive")
	completeFlag(cmd, "format", string(oci.OCIArchive), string(oci.DockerArchive))
	return cmd
}

func newCachePullCmd() *cobra.Command {
	var arch string
	cmd := &cobra.Command{
		Use:   "pull [--arch amd64|arm64] REF...",
		Short: "pull images from their registries into the cache",
		Long: `Pulls images from their registries into the cache, as keel build does (the same
credentials: docker's config.json and credential helpers), whether or not the cache
has them; blobs already cached are not fetched again.`,
		Args: wantArgs(1, -1, "an image reference"),
	}
	shown := addProgressFlags(cmd.Flags())
	cmd.Flags().StringVar(&arch, "arch", "amd64", "platform to pull from a multi-platform image: amd64 or arm64")
	cmd.RunE = func(cmd *cobra.Command, refs []string) error {
		platform, err := parseArch(cmd, arch)
		if err != nil {
			return err
		}
		cache, err := openCache()
		if err != nil {
			return err
		}
		display := shown.display(os.Stdout, os.Stderr)
		defer display.Close()
		r := &oci.Resolver{Cache: cache, Platform: platform, Progress: display, Tasks: display}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		for _, ref := range refs {
			if err := r.Pull(ctx, ref); err != nil {
				return err
			}
			img, err := cache.Image(ref)
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(display, "image %s %s\n", ref, d)
		}
		return nil
	}
	return cmd
}

func newCachePushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push REF DEST",
		Short: "push a cached image to a registry",
		Long: `Pushes the cached image REF to the registry reference DEST, with the credentials and
transport keel uses to pull (a registry on a loopback address is spoken to over plain
HTTP). Prints DEST by digest.`,
		Example: `  keel cache push keel/init:0.1 registry.example.com/keel/init:0.1`,
		Args:    wantArgs(2, 2, "REF DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := &oci.Resolver{Cache: cache}
			pushed, err := r.Push(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n", pushed)
			return nil
		},
	}
}
