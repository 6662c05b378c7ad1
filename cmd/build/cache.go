package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/oci"
)

const cacheUsage = `usage: keel cache ls [-l]
       keel cache rm REF...
       keel cache clean
       keel cache import [--tag REF] [--arch amd64|arm64] FILE.tar|DIR
       keel cache export REF FILE.tar

Manages the local image cache ($KEEL_CACHE, default ~/.cache/keel):
  ls      list the cached images
  rm      drop images from the cache's index (clean frees their blobs)
  clean   delete the blobs no cached image uses; report the bytes freed
  import  store the images of an image source in the cache, every blob checked against its digest:
            an OCI image layout directory (oci-layout, index.json, blobs/), a tar of one
            (skopeo oci-archive:, docker save of Docker 25+), or a docker-archive tar (docker save);
            the format is read from the content. Each image is stored under its name: the
            io.containerd.image.name annotation, else org.opencontainers.image.ref.name when it is
            a full reference, else a bare tag T gets the layout's base name: DIR (or FILE without
            .tar) + ":" + T. --tag REF names a source holding one image; --arch picks the
            platform from a multi-platform index (default amd64)
  export  write a cached image as a docker-archive tar (keel cache import and docker load read it)`

// cleanMinAge spares unreferenced blobs younger than this: they may
// belong to a pull in flight whose index entry is not written yet.
const cleanMinAge = 10 * time.Minute

func cacheCommand(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("cache: want a subcommand\n%s", cacheUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Println(cacheUsage)
		return nil
	case "ls":
		return cacheLs(rest)
	}
	fs := newFlagSet("cache "+sub, "", cacheUsage)
	tag, arch := "", ""
	if sub == "import" {
		fs.StringVar(&tag, "tag", "", "store the source's one image under this reference")
		fs.StringVar(&arch, "arch", "amd64", "platform to take from a multi-platform index: amd64 or arm64")
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	cache, err := oci.OpenCache(oci.DefaultCacheDir())
	if err != nil {
		return err
	}
	switch sub {
	case "rm":
		if fs.NArg() == 0 {
			return fmt.Errorf("cache rm: want an image reference")
		}
		for _, ref := range fs.Args() {
			if err := cache.Remove(ref); err != nil {
				return err
			}
		}
		return nil
	case "clean":
		if fs.NArg() > 0 {
			return fmt.Errorf("cache clean: unexpected argument %q", fs.Arg(0))
		}
		n, freed, err := cache.Clean(cleanMinAge)
		if err != nil {
			return err
		}
		fmt.Printf("removed %d blobs, %d bytes freed\n", n, freed)
		return nil
	case "import":
		if fs.NArg() != 1 {
			return fmt.Errorf("cache import: want one FILE.tar or layout DIR")
		}
		if arch != "amd64" && arch != "arm64" {
			return fmt.Errorf("cache import: -arch %q: want amd64 or arm64", arch)
		}
		names, err := cache.Import(fs.Arg(0), tag, v1.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Println("imported", n)
		}
		return nil
	case "export":
		if fs.NArg() != 2 {
			return fmt.Errorf("cache export: want REF FILE.tar")
		}
		return cache.Export(fs.Arg(0), fs.Arg(1))
	}
	return fmt.Errorf("cache: unknown subcommand %q\n%s", sub, cacheUsage)
}

func cacheLs(args []string) error {
	fs := newFlagSet("cache ls", "", "Lists the images in the local cache ($KEEL_CACHE, default ~/.cache/keel), one reference per line.")
	long := fs.Bool("l", false, "also print each image's manifest digest and manifest size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cache ls: unexpected argument %q", fs.Arg(0))
	}
	cache, err := oci.OpenCache(oci.DefaultCacheDir())
	if err != nil {
		return err
	}
	list, err := cache.List()
	if err != nil {
		return err
	}
	if !*long {
		for _, img := range list {
			fmt.Println(img.Ref)
		}
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, img := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", img.Ref, img.Digest, img.Size)
	}
	return tw.Flush()
}
