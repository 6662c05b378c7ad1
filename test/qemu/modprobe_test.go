package qemu_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keel-os/keel/pkg/testenv"
)

// The guest's own modprobe, busybox's and kmod's, loads modules of the
// image that nothing loaded at boot, with their dependencies, by name and
// by alias: from the console, and from onboot containers that bind
// /lib/modules as LinuxKit's images do. The build wrote depmod's files for
// them (busybox reads the text ones, kmod the .bin indexes).
const modprobeYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
onboot:
  - name: busybox-modprobe
    image: {{.Busybox}}
    binds: [/lib/modules:/lib/modules:ro]
    capabilities: [all]
    command: ["/bin/sh", "-c", "for m in br_netfilter bridge stp llc veth vsock; do test -d /sys/module/$m && echo loaded-before-$m; done; modprobe br_netfilter && echo busybox-modprobe-rc=$?"]
  - name: kmod-modprobe
    image: {{.Registry}}/kmod:test
    binds: [/lib/modules:/lib/modules:ro]
    capabilities: [all]
    command: ["/sbin/modprobe", "-a", "-v", "rtnl-link-veth", "virtio:d00000013v00001AF4"]
`

// kmodImage makes an image of the host's kmod (Debian's package kmod):
// the binary, modprobe as a link to it, and the shared libraries it
// needs, at their paths. Without kmod on the host it skips the test, or
// under make test fails it (testenv.Missing).
func kmodImage(t *testing.T) {
	t.Helper()
	bin, err := filepath.EvalSymlinks("/sbin/modprobe")
	if err != nil || filepath.Base(bin) != "kmod" {
		testenv.Missing(t, "kmod's modprobe not installed on the host (Debian package kmod; `make deps` installs it)")
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := []string{bin}
	for _, m := range regexp.MustCompile(`(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		files = append(files, m[1])
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	add := func(h *tar.Header, data []byte) {
		var parents []string
		for d := filepath.Dir(h.Name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		// The name the loader looks for, with the file's bytes (a
		// library's soname is often a link to a versioned file).
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add(&tar.Header{Name: strings.TrimPrefix(f, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}, data)
	}
	for _, l := range []string{"sbin/modprobe", "sbin/lsmod"} {
		add(&tar.Header{Name: l, Typeflag: tar.TypeSymlink, Linkname: bin, Mode: 0o777}, nil)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(registryHost+"/kmod:test", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

func TestGuestModprobe(t *testing.T) {
	requireBoot(t)
	kmodImage(t)
	prefix := buildImage(t, "modprobe", modprobeYAML)
	vm := boot(t, prefix, nil)

	const wait = 3 * time.Minute
	i := vm.Expect(0, `keel: init started`, wait)
	// busybox's modprobe, in a container: br_netfilter after bridge, stp
	// and llc, none of them (nor what kmod loads next) loaded before.
	i = vm.Expect(i, `\] 000-busybox-modprobe: busybox-modprobe-rc=0$`, wait)
	i = vm.Expect(i, `keel: onboot 000-busybox-modprobe exit=0 `, wait)
	// kmod's modprobe, in a container: veth by an alias with dashes, and
	// vmw_vsock_virtio_transport by a wildcard alias, after its
	// dependencies.
	i = vm.Expect(i, `\] 001-kmod-modprobe: insmod /lib/modules/\S+/kernel/drivers/net/veth\.ko`, wait)
	i = vm.Expect(i, `\] 001-kmod-modprobe: insmod /lib/modules/\S+/kernel/net/vmw_vsock/vmw_vsock_virtio_transport\.ko`, wait)
	i = vm.Expect(i, `keel: onboot 001-kmod-modprobe exit=0 `, wait)
	i = vm.Expect(i, `keel: console shell started`, wait)

	// busybox's modprobe at the console: tun, not loaded before.
	i = vm.run(i, "test -d /sys/module/tun && echo tun-before=yes || echo tun-before=no", `^tun-before=`)
	if l := vm.Lines()[i]; l != "tun-before=no" {
		t.Errorf("tun was loaded before modprobe: %q", l)
	}
	i = vm.run(i, "modprobe tun; echo console-modprobe-rc=$?", `^console-modprobe-rc=`)
	if l := vm.Lines()[i]; l != "console-modprobe-rc=0" {
		t.Errorf("modprobe tun at the console: %q", l)
	}
	want := "tun br_netfilter bridge stp llc veth vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport"
	i = vm.run(i, "echo loaded:$(for m in "+want+"; do test -d /sys/module/$m && printf ' %s' $m; done)", `^loaded:`)
	if l := vm.Lines()[i]; l != "loaded: "+want {
		t.Errorf("modules loaded: %q, want %q", l, "loaded: "+want)
	}
	i = vm.run(i, "lsmod | grep -c '^tun '", `^\d+$`)
	if l := vm.Lines()[i]; l != "1" {
		t.Errorf("lsmod lists tun %s times", l)
	}
	for _, l := range vm.Lines() {
		if strings.Contains(l, "loaded-before-") {
			t.Errorf("loaded before the onboot modprobe: %q", l)
		}
	}
}
