package bootimage

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageOf is a one-layer image holding files.
func imageOf(t *testing.T, files map[string]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
		tw.Write([]byte(data))
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRead(t *testing.T) {
	files := map[string]string{
		EFIStub: "stub", "./" + SystemdBoot: "sd-boot", Isolinux: "isolinux", IsohybridMBR: "mbr",
		Ldlinux: "ldlinux", "efi/other": "not a loader",
	}
	l, err := Read("keel/boot:t", imageOf(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 5 || string(l[EFIStub]) != "stub" || string(l[SystemdBoot]) != "sd-boot" {
		t.Errorf("loaders %v", l)
	}
	delete(files, Isolinux)
	if _, err := Read("keel/boot:t", imageOf(t, files)); err == nil || !strings.Contains(err.Error(), "keel/boot:t has no /"+Isolinux) {
		t.Errorf("err = %v", err)
	}
}
