package initrd

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// BenchmarkUnpackGzip measures the build's hot path: layers (both passes)
// into cpio into gzip, for three layers of 2000 files of 4 KiB.
func BenchmarkUnpackGzip(b *testing.B) {
	const layers, files, size = 3, 2000, 4096
	data := bytes.Repeat([]byte("keel initrd benchmark data 0123456789\n"), size/38+1)[:size]
	var ls []Layer
	for li := range layers {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := range files {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/d%d/f%d-%d", i%50, li, i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		tw.Close()
		raw := buf.Bytes()
		ls = append(ls, Layer{Name: fmt.Sprint(li), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }})
	}
	b.SetBytes(layers * files * size)
	b.ReportAllocs()
	for b.Loop() {
		zw := gzip.NewWriter(io.Discard)
		a := NewArchive(zw, 0)
		if err := Unpack(a, "rootfs", ls); err != nil {
			b.Fatal(err)
		}
		a.Close()
		zw.Close()
	}
}
