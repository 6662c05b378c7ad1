package initrd

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/pierrec/lz4/v4"
)

// Compression is how the initrd's cpio segments are compressed. Every
// choice gives the same bytes whatever the number of cores, and each is one
// the kernel unpacks (CONFIG_RD_GZIP, CONFIG_RD_ZSTD, CONFIG_RD_LZ4: the
// Debian 6.1 cloud kernel has all three).
type Compression string

const (
	// Gzip is the default: under TCG it unpacks fastest of the three.
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	// LZ4 writes the legacy lz4 frame (magic 0x184C2102, 8 MiB blocks,
	// what `lz4 -l` writes): the only lz4 format the kernel's initramfs
	// decompressor reads.
	LZ4  Compression = "lz4"
	None Compression = "none"
)

// Compressions lists the accepted values of --compress.
var Compressions = []Compression{Gzip, Zstd, LZ4, None}

// ParseCompression checks a --compress value.
func ParseCompression(s string) (Compression, error) {
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, len(Compressions))
	for i, c := range Compressions {
		names[i] = string(c)
	}
	return "", fmt.Errorf("unknown compression %q: want one of %s", s, strings.Join(names, ", "))
}

// Ext is the file name suffix of a segment compressed this way.
func (c Compression) Ext() string {
	switch c {
	case Gzip:
		return ".cpio.gz"
	case Zstd:
		return ".cpio.zst"
	case LZ4:
		return ".cpio.lz4"
	}
	return ".cpio"
}

// zstdWindow bounds the zstd window: the kernel allocates the whole window
// while it unpacks, early in boot.
const zstdWindow = 8 << 20

// newCompressor returns a writer that compresses into w; closing it
// finishes the stream but does not close w.
func (c Compression) newCompressor(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case Gzip, "":
		zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		// The output depends only on the block size, not on the number of
		// cores; the header has no name and no time.
		if err := zw.SetConcurrency(gzipBlockSize, runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		return zw, nil
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderCRC(true))
	case LZ4:
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.LegacyOption(true), lz4.ConcurrencyOption(runtime.GOMAXPROCS(0))); err != nil {
			return nil, err
		}
		return zw, nil
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// compressWith compresses what fill writes into w, as one stream.
func compressWith(c Compression, w io.Writer, fill func(io.Writer) error) error {
	zw, err := c.newCompressor(w)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	if err := fill(zw); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// compress gzips what fill writes into w. Compression is most of a build's
// time, so blocks are compressed on every core. The result is one ordinary
// gzip member, which the kernel unpacks like any other.
func compress(w io.Writer, fill func(io.Writer) error) error {
	return compressWith(Gzip, w, fill)
}

// CompressStream compresses r into w exactly as the build compresses a
// segment (for benchmarks and tools).
func CompressStream(c Compression, w io.Writer, r io.Reader) error {
	return compressWith(c, w, func(zw io.Writer) error {
		_, err := io.Copy(zw, r)
		return err
	})
}
