package qemu_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keel-os/keel/pkg/testenv"
)

// netRawCapability is security.capability for cap_net_raw+ep, as
// `setcap cap_net_raw+ep` writes it (struct vfs_cap_data, revision 2):
// magic 0x02000000 with the effective flag, then permitted bit 13.
var netRawCapability = string([]byte{
	0x01, 0x00, 0x00, 0x02,
	0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
})

const fcapYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet keel.oneshot"
init:
  - {{.Init}}
onboot:
  - name: fcap
    image: {{.Registry}}/keel-test/fcap:1
    uid: 1000
    # In the bounding set only: uid 1000 loses it at exec unless a file
    # grants it.
    capabilities: [CAP_NET_RAW]
    command: ["/bin/sh", "-c", "echo with=$(/cap/busybox grep CapEff /proc/self/status | cut -f2) without=$(grep CapEff /proc/self/status | cut -f2)"]
`

// A file capability in an image layer (security.capability, as Debian's
// ping has) reaches the booted system: a program run by uid 1000 gets
// CAP_NET_RAW from its file, and the same program without the attribute
// gets nothing. The initrd's newc format has no xattrs: keel carries them
// in a manifest that PID 1 applies at boot.
func TestFileCapabilityKept(t *testing.T) {
	requireBoot(t)
	bb := testenv.Tool(t, "busybox", "busybox-static")
	prog, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	add := func(h *tar.Header, data []byte) {
		h.Size, h.Format = int64(len(data)), tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, prog)
	add(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeLink, Linkname: "bin/busybox"}, nil)
	add(&tar.Header{Name: "bin/grep", Typeflag: tar.TypeLink, Linkname: "bin/busybox"}, nil)
	add(&tar.Header{Name: "bin/cut", Typeflag: tar.TypeLink, Linkname: "bin/busybox"}, nil)
	add(&tar.Header{Name: "cap/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "cap/busybox", Typeflag: tar.TypeReg, Mode: 0o755,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": netRawCapability}}, prog)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{Cmd: []string{"/bin/sh"}}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(registryHost + "/keel-test/fcap:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	prefix := buildImage(t, "fcap", fcapYAML)
	vm := boot(t, prefix, nil)
	const wait = 3 * time.Minute
	i := vm.Expect(0, `\] 000-fcap: with=\S* without=\S*$`, wait)
	line := vm.Lines()[i]
	if !strings.HasSuffix(line, "with=0000000000002000 without=0000000000000000") {
		t.Errorf("effective capabilities: %q, want CAP_NET_RAW (0x2000) from the file's capability only", line)
	}
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly: %v", err)
	}
}
