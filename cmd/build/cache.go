package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/keel-os/keel/pkg/oci"
)

func cacheCommand(args []string) error {
	if len(args) == 0 || args[0] != "ls" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Println("usage: keel cache ls [-l]\n\nLists the images in the local cache ($KEEL_CACHE, default ~/.cache/keel).")
			return nil
		}
		return fmt.Errorf("cache: want a subcommand: keel cache ls [-l]")
	}
	fs := newFlagSet("cache ls", "", "Lists the images in the local cache ($KEEL_CACHE, default ~/.cache/keel), one reference per line.")
	long := fs.Bool("l", false, "also print each image's manifest digest and manifest size")
	if err := fs.Parse(args[1:]); err != nil {
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
