package qemu_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A system that says hello and powers off, to push and boot back.
const pushYAML = `
kernel:
  image: {{.Kernel}}
  cmdline: "console=ttyS0 quiet"
init:
  - {{.Init}}
onboot:
  - name: hello
    image: {{.Busybox}}
    command: ["/bin/sh", "-c", "echo hello from a pushed kernelboot image"]
  - name: poweroff
    image: {{.Busybox}}
    command: ["/sbin/poweroff"]
    pid: host
    capabilities: [all]
`

// keel push --format kernelboot, then what KubeVirt does with the image:
// pull it, take the kernel and initrd from kernelPath and initrdPath, and
// boot them with kernelArgs (here, the line keel push printed). The guest
// runs its onboot containers and powers off.
func TestBootKernelBootImage(t *testing.T) {
	requireBoot(t)
	prefix := buildImage(t, "pushed", pushYAML)
	ref := registryHost + "/vm/pushed:1"
	cmd := exec.Command(keelBin, "push", "--format", "kernelboot", "--dir", filepath.Dir(prefix), ref, filepath.Base(prefix))
	out, err := cmd.CombinedOutput()
	t.Logf("keel push:\n%s", out)
	if err != nil {
		t.Fatalf("keel push: %v", err)
	}
	var kernelArgs, pushed string
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "kernelArgs: "); ok {
			kernelArgs = s
		}
		if s, ok := strings.CutPrefix(line, "pushed "); ok {
			pushed = s
		}
	}
	if kernelArgs != "console=ttyS0 quiet" || pushed == "" {
		t.Fatalf("keel push printed kernelArgs %q, pushed %q", kernelArgs, pushed)
	}

	// Pull by digest and write the files where keel run's harness looks.
	r, err := name.ParseReference(pushed, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", pushed, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	pulled := filepath.Join(t.TempDir(), "pulled")
	files := map[string]string{"boot/vmlinuz": pulled + "-kernel", "boot/initrd.img": pulled + "-initrd.img"}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, ok := files[h.Name]
		if !ok {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		delete(files, h.Name)
	}
	if len(files) != 0 {
		t.Fatalf("the image lacks %v", files)
	}
	for _, suffix := range []string{"-kernel", "-initrd.img"} {
		a, _ := os.ReadFile(prefix + suffix)
		b, _ := os.ReadFile(pulled + suffix)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("%s pulled back differs from the build's (%d and %d bytes)", suffix, len(a), len(b))
		}
	}
	if err := os.WriteFile(pulled+"-cmdline", []byte(kernelArgs+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	vm := boot(t, pulled, nil)
	const wait = 3 * time.Minute
	i := vm.Expect(0, `keel: init started`, wait)
	i = vm.Expect(i, `\] 000-hello: hello from a pushed kernelboot image$`, wait)
	i = vm.Expect(i, `keel: shutdown power-off`, wait)
	vm.Expect(i, `reboot: Power down`, wait)
	if err := vm.Wait(wait); err != nil {
		t.Fatalf("qemu did not exit cleanly after power-off: %v", err)
	}
}
