package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/oci"
)

// buildRepairing builds, and builds once more when the first attempt met a
// cached layer whose bytes do not match its digest. Layers are checked by
// the read that uses them, deep in the initrd writer, where nothing can be
// fetched; the reader has removed the damaged blob from the cache by then,
// so the second attempt's resolve fetches it again. The failed attempt
// left no output behind.
func buildRepairing(ctx context.Context, files []string, out initrd.Outputs, opts buildOptions) error {
	err := build(ctx, files, out, opts)
	var be *oci.BlobError
	if !errors.As(err, &be) || !be.Removed {
		return err
	}
	progress := opts.progress
	if progress == nil {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "cache: image %s: blob %s was damaged and is removed; building again\n", be.Image, be.Digest)
	return build(ctx, files, out, opts)
}
