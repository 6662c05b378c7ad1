package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keel-os/keel/pkg/disk"
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
	// disk holds the bootable disk formats (pkg/disk) and their flags.
	disk diskOptions
}

// formatFlag is --format, which can repeat and takes commas.
type formatFlag struct{ o *outputOptions }

func (f formatFlag) String() string {
	if f.o == nil {
		return ""
	}
	var s []string
	for _, x := range f.o.formats {
		s = append(s, string(x))
	}
	for _, x := range f.o.disk.formats {
		s = append(s, string(x))
	}
	return strings.Join(s, ",")
}

func (formatFlag) Type() string { return "format" }

func (f formatFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		x, err := initrd.ParseFormat(strings.TrimSpace(s))
		if err != nil {
			if d, ok := disk.ParseFormat(strings.TrimSpace(s)); ok {
				f.o.disk.formats = append(f.o.disk.formats, d)
				continue
			}
			return fmt.Errorf("%w, %s", err, diskFormatNames())
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
	fs.Var(formatFlag{o}, "format", "output `format`: kernel+initrd (default), tar, tar-kernel-initrd, kernel+squashfs, "+diskFormatNames()+"; repeat, or give several with commas")
	o.disk.addFlags(fs)
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

// reportOutputs prints what was written: the outputs, the disk images,
// then the lock file.
func reportOutputs(w io.Writer, out initrd.Outputs, st initrd.SegmentStats, disks []string, lockFile string) {
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
	files := out.Files()
	if len(out.Formats) == 0 && len(disks) > 0 {
		files = nil // only disk formats were asked for
	}
	for _, p := range append(append(files, disks...), lockFile) {
		fmt.Fprintf(w, "wrote %s\n", p)
	}
}
