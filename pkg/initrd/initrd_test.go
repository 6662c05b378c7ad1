package initrd

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/keel-os/keel/pkg/config"
)

func TestWriteCPIOBaseAndFiles(t *testing.T) {
	var buf bytes.Buffer
	err := WriteCPIO(&buf, Contents{Files: []config.File{
		{Path: "usr/bin/tool", Kind: config.RegularFile, Contents: "#!/bin/sh\n", Mode: 0o755 | fs.ModeSetuid},
		{Path: "var/secret", Kind: config.Directory, Mode: 0o700},
		{Path: "etc/mtab", Kind: config.Symlink, Target: "/proc/mounts", Mode: 0o777},
	}}, 1699956800) // Nov 14 2023 at noon UTC, Nov 14 in every time zone
	if err != nil {
		t.Fatal(err)
	}
	// Compare with runs of spaces squeezed: cpio aligns columns.
	out := strings.Join(strings.Fields(cpioTool(t, buf.Bytes(), t.TempDir(), "-tv", "--quiet")), " ")
	for _, want := range []string{
		"crw------- 1 root root 5, 1 Nov 14 2023 dev/console",
		"-rwsr-xr-x 1 root root 10 Nov 14 2023 usr/bin/tool",
		"drwx------ 2 root root 0 Nov 14 2023 var/secret",
		"lrwxrwxrwx 1 root root 12 Nov 14 2023 etc/mtab -> /proc/mounts",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
}

func TestMtime(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if m, err := Mtime(); err != nil || m != 0 {
		t.Errorf("unset: %d, %v", m, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if m, err := Mtime(); err != nil || m != 1700000000 {
		t.Errorf("set: %d, %v", m, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := Mtime(); err == nil || err.Error() != `invalid SOURCE_DATE_EPOCH "yesterday": want seconds since 1970` {
		t.Errorf("invalid: %v", err)
	}
}

func TestWriteNeedsAKernel(t *testing.T) {
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := Outputs{Dir: dir, Name: "x"}
	err = Write(o, Build{Kernel: Image{Ref: "k:1", Image: img}})
	want := "kernel image k:1 has no /kernel"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

// The initrd's bytes must not depend on how many cores compressed it.
func TestCompressIsReproducibleAcrossCores(t *testing.T) {
	data := make([]byte, 3*gzipBlockSize+12345)
	for i := range data {
		data[i] = byte(i*i>>7) ^ byte(i>>13)
	}
	gz := func(procs int) []byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		var buf bytes.Buffer
		if err := compress(&buf, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one, four := gz(1), gz(4)
	if !bytes.Equal(one, four) {
		t.Fatal("1 and 4 cores give different bytes")
	}
	zr, err := gzip.NewReader(bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: %v", err)
	}
}
