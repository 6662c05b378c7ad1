package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keel-os/keel/pkg/initrd"
)

// outputOptions are the flags of keel build about the outputs: their
// formats and the initrd's compression.
type outputOptions struct {
	formats     []initrd.Format
	compression initrd.Compression
	// noSegmentCache turns the segment cache off: every segment is made
	// anew.
	noSegmentCache bool
}

// formatFlag is --format, which can repeat and takes commas.
type formatFlag struct{ o *outputOptions }

func (f formatFlag) String() string {
	if f.o == nil {
		return ""
	}
	s := make([]string, len(f.o.formats))
	for i, x := range f.o.formats {
		s[i] = string(x)
	}
	return strings.Join(s, ",")
}

func (formatFlag) Type() string { return "format" }

func (f formatFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		x, err := initrd.ParseFormat(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		f.o.formats = append(f.o.formats, x)
	}
	return nil
}

type compressFlag struct{ o *outputOptions }

func (f compressFlag) String() string {
	if f.o == nil || f.o.compression == "" {
		return string(initrd.Gzip)
	}
	return string(f.o.compression)
}

func (compressFlag) Type() string { return "compression" }

func (f compressFlag) Set(v string) error {
	c, err := initrd.ParseCompression(v)
	f.o.compression = c
	return err
}

// addOutputFlags registers --format, --compress and --no-segment-cache.
func addOutputFlags(fs *pflag.FlagSet) *outputOptions {
	o := &outputOptions{compression: initrd.Gzip}
	fs.Var(formatFlag{o}, "format", "output `format`: kernel+initrd (default), tar, tar-kernel-initrd, kernel+squashfs; repeat, or give several with commas")
	fs.Var(compressFlag{o}, "compress", "initrd compression: gzip, zstd, lz4 or none")
	fs.BoolVar(&o.noSegmentCache, "no-segment-cache", false, "make every initrd segment anew instead of reusing cached ones")
	return o
}

// apply puts the options into the outputs and the build. cacheDir is the
// image cache's directory, checked private by oci.OpenCache: the segments
// are cached below it, and reused without further checks.
func (o *outputOptions) apply(out *initrd.Outputs, b *initrd.Build, cacheDir string) {
	if o == nil {
		return
	}
	out.Formats = o.formats
	b.Compression = o.compression
	if !o.noSegmentCache {
		b.SegmentCache = filepath.Join(cacheDir, "segments")
	}
}

// reportOutputs prints what was written: the outputs, then the lock file.
func reportOutputs(w io.Writer, out initrd.Outputs, st initrd.SegmentStats, lockFile string) {
	fmt.Fprintf(w, "initrd: %d segments written, %d reused from the cache\n", st.Written, st.Reused)
	// Extended attributes reach the booted system through a manifest PID 1
	// applies (pkg/xattrs); say which may not get there rather than lose
	// them silently. An image in several segments warns once.
	seen := map[string]bool{}
	for _, d := range st.XattrWarnings {
		if !seen[d] {
			seen[d] = true
			fmt.Fprintf(os.Stderr, "keel: warning: %s\n", d)
		}
	}
	for _, p := range append(out.Files(), lockFile) {
		fmt.Fprintf(w, "wrote %s\n", p)
	}
}
