package kubevirt

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keel-os/keel/pkg/oci"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// testRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 and returns its host:port.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pushPull pushes img with keel's pusher and pulls it back by digest, as
// a node would.
func pushPull(t *testing.T, img v1.Image, dest string) v1.Image {
	t.Helper()
	pushed, err := (&oci.Resolver{}).PushImage(context.Background(), img, dest)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(pushed, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref, remote.WithPlatform(amd64))
	if err != nil {
		t.Fatalf("pull %s: %v", pushed, err)
	}
	return got
}

// tarEntry is what a layer's tar says of one entry.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	mtime    int64
	data     string
}

// checkImage checks what every image here must be: OCI media types, the
// platform, the creation time, and one layer, whose entries it returns.
func checkImage(t *testing.T, img v1.Image, mtime int64) []tarEntry {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types: manifest %s, config %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("layers %+v, want one %s", m.Layers, types.OCILayer)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(time.Unix(mtime, 0)) {
		t.Errorf("created %v, want %v", cf.Created.Time, time.Unix(mtime, 0).UTC())
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []tarEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, tarEntry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), string(data)})
	}
	return entries
}

func checkEntries(t *testing.T, got, want []tarEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("layer holds %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestContainerDiskLayout(t *testing.T) {
	host := testRegistry(t)
	dir := t.TempDir()
	const mtime = 1700000000
	for _, tc := range []struct {
		data   string
		format DiskFormat
		file   string
	}{
		{"QFI\xfb\x00\x00\x00\x03 a fake qcow2", QCOW2, "disk/disk.qcow2"},
		{strings.Repeat("\x00", 510) + "\x55\xaa a fake raw disk", Raw, "disk/disk.img"},
	} {
		disk := writeFile(t, dir, string(tc.format), tc.data)
		img, format, err := ContainerDisk(disk, Options{Platform: amd64, Mtime: mtime})
		if err != nil {
			t.Fatal(err)
		}
		if format != tc.format {
			t.Errorf("%s: sniffed %s", tc.format, format)
		}
		got := checkImage(t, pushPull(t, img, host+"/vm/disk:"+string(tc.format)), mtime)
		checkEntries(t, got, []tarEntry{
			{"disk/", tar.TypeDir, 0o555, QemuID, QemuID, mtime, ""},
			{tc.file, tar.TypeReg, 0o440, QemuID, QemuID, mtime, tc.data},
		})
	}
}

func TestKernelBootLayout(t *testing.T) {
	host := testRegistry(t)
	dir := t.TempDir()
	kernel := writeFile(t, dir, "sys-kernel", "MZ a fake bzImage")
	initrd := writeFile(t, dir, "sys-initrd.img", "070701 a fake initrd")
	img, err := KernelBoot(kernel, initrd, Options{Platform: amd64})
	if err != nil {
		t.Fatal(err)
	}
	got := checkImage(t, pushPull(t, img, host+"/vm/kernel:1"), 0)
	checkEntries(t, got, []tarEntry{
		{"boot/", tar.TypeDir, 0o555, QemuID, QemuID, 0, ""},
		{"boot/initrd.img", tar.TypeReg, 0o444, QemuID, QemuID, 0, "070701 a fake initrd"},
		{"boot/vmlinuz", tar.TypeReg, 0o444, QemuID, QemuID, 0, "MZ a fake bzImage"},
	})
	if "/"+got[1].name != InitrdPath || "/"+got[2].name != KernelPath {
		t.Errorf("paths %s, %s; the docs say %s, %s", got[1].name, got[2].name, InitrdPath, KernelPath)
	}
}

// The same files and time give the same digest, wherever the files are
// and whatever their host mode and times; a different byte or time gives
// another.
func TestReproducible(t *testing.T) {
	digest := func(dir string, kernel string, mode os.FileMode, o Options) v1.Hash {
		t.Helper()
		k := writeFile(t, dir, "k", kernel)
		i := writeFile(t, dir, "i", "initrd")
		for _, p := range []string{k, i} {
			os.Chmod(p, mode)
			os.Chtimes(p, time.Now(), time.Unix(int64(mode), 0))
		}
		img, err := KernelBoot(k, i, o)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	o := Options{Platform: amd64, Mtime: 1}
	a := digest(t.TempDir(), "kernel", 0o600, o)
	if b := digest(t.TempDir(), "kernel", 0o755, o); b != a {
		t.Errorf("same content, two digests: %s, %s", a, b)
	}
	if b := digest(t.TempDir(), "kernel!", 0o600, o); b == a {
		t.Error("a different kernel gave the same digest")
	}
	if b := digest(t.TempDir(), "kernel", 0o600, Options{Platform: amd64, Mtime: 2}); b == a {
		t.Error("a different time gave the same digest")
	}
	arm := Options{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Mtime: 1}
	if b := digest(t.TempDir(), "kernel", 0o600, arm); b == a {
		t.Error("a different platform gave the same digest")
	}
}

func TestSniffDiskRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, data, want string }{
		{"x.vmdk", "KDMV\x01\x00\x00\x00", "VMDK"},
		{"x.img.tar.gz", "\x1f\x8b\x08\x00", "gzip"},
		{"x.vhd", "conectix\x00\x00", "dynamic VHD"},
		{"empty", "", "empty file"},
	} {
		_, _, err := ContainerDisk(writeFile(t, dir, tc.name, tc.data), Options{Platform: amd64})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: error %v, want one naming the file and %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := ContainerDisk(dir, Options{Platform: amd64}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if _, err := KernelBoot(filepath.Join(dir, "missing"), filepath.Join(dir, "x.vmdk"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing kernel: %v", err)
	}
}

// A file that grows between making the image and pushing it fails the
// push, rather than sending a layer that does not match its digest.
func TestFileChangedFailsPush(t *testing.T) {
	host := testRegistry(t)
	dir := t.TempDir()
	disk := writeFile(t, dir, "d.img", "raw disk")
	img, _, err := ContainerDisk(disk, Options{Platform: amd64})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "d.img", "raw disk, grown")
	_, err = (&oci.Resolver{}).PushImage(context.Background(), img, host+"/vm/d:1")
	if err == nil || !strings.Contains(err.Error(), "changed while it was pushed") {
		t.Errorf("push of a changed file: %v", err)
	}
}
