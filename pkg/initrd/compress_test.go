package initrd

import (
	"bytes"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func decompress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case LZ4:
		r = lz4.NewReader(bytes.NewReader(b))
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: decompress: %v", c, err)
	}
	return out
}

// Every compression gives the same bytes whatever the number of cores, and
// round-trips. lz4 must be the legacy frame the kernel reads.
func TestCompressionsReproducibleAcrossCores(t *testing.T) {
	data := make([]byte, 9<<20+12345)
	for i := range data {
		data[i] = byte(i*i>>7) ^ byte(i>>13)
	}
	for _, c := range Compressions {
		t.Run(string(c), func(t *testing.T) {
			z := func(procs int) []byte {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				var buf bytes.Buffer
				err := compressWith(c, &buf, func(w io.Writer) error { _, err := w.Write(data); return err })
				if err != nil {
					t.Fatal(err)
				}
				return buf.Bytes()
			}
			one, four := z(1), z(4)
			if !bytes.Equal(one, four) {
				t.Fatal("1 and 4 cores give different bytes")
			}
			if !bytes.Equal(decompress(t, c, one), data) {
				t.Fatal("round trip changed the data")
			}
			if c == LZ4 {
				if m := binary.LittleEndian.Uint32(one); m != 0x184C2102 {
					t.Fatalf("lz4 magic %#x, want the legacy 0x184C2102", m)
				}
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range Compressions {
		if got, err := ParseCompression(string(c)); err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %q, %v", c, got, err)
		}
	}
	if _, err := ParseCompression("xz"); err == nil {
		t.Error("xz accepted")
	}
}
