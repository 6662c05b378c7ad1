package main

import (
	"fmt"
	"text/tabwriter"
	"time"

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
	cmd.AddCommand(newCacheLsCmd(), newCacheRmCmd(), newCacheCleanCmd(), newCacheImportCmd(), newCacheExportCmd())
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
		Long:  "Lists the images in the local cache, one reference per line.",
		Args:  wantArgs(0, 0, "no arguments"),
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
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, img := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", img.Ref, img.Digest, img.Size)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "also print each image's manifest digest and size")
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
		Use:   "import [--tag REF] [--arch amd64|arm64] FILE.tar|DIR",
		Short: "store the images of an OCI layout (directory or tar) or a docker-archive tar in the cache",
		Long: `Stores the images of an image source in the cache, every blob checked against its digest:
an OCI image layout directory (oci-layout, index.json, blobs/), a tar of one (skopeo
oci-archive:, docker save of Docker 25+), or a docker-archive tar (docker save); the
format is read from the content.

Each image is stored under its name: the io.containerd.image.name annotation, else
org.opencontainers.image.ref.name when it is a full reference, else a bare tag T gets
the layout's base name: DIR (or FILE without .tar) + ":" + T. --tag names a source
holding one image.`,
		Args: wantArgs(1, 1, "one FILE.tar or layout DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			platform, err := parseArch(cmd, arch)
			if err != nil {
				return err
			}
			cache, err := openCache()
			if err != nil {
				return err
			}
			names, err := cache.Import(args[0], tag, platform)
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
	return &cobra.Command{
		Use:   "export REF FILE.tar",
		Short: "write a cached image as a docker-archive tar (keel cache import and docker load read it)",
		Args:  wantArgs(2, 2, "REF FILE.tar"),
		RunE: func(_ *cobra.Command, args []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			return cache.Export(args[0], args[1])
		},
	}
}
