package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/testenv"
)

// file is a tar entry for a test layer: a regular file unless link (hard
// link), symlink or dir says otherwise.
type file struct {
	name, data    string
	link, symlink string
	dir, whiteout bool
	mode          int64
}

func tarBytes(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data))}
		switch {
		case f.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, f.link, 0
		case f.symlink != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.symlink, 0o777
		}
		if f.mode != 0 {
			h.Mode = f.mode
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, f.data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// image makes an image from layers of files, with cmd as its command.
func image(t *testing.T, cmd []string, layers ...[]file) v1.Image {
	t.Helper()
	img := empty.Image
	for _, files := range layers {
		b := tarBytes(t, files...)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = cmd
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testImages serves a kernel, an init and a busybox image from a registry
// on 127.0.0.1 and returns the registry's host:port.
func testImages(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	modules := tarBytes(t,
		file{name: "lib/modules/6.1.0-test/", dir: true},
		file{name: "lib/modules/6.1.0-test/modules.dep", data: "kernel/virtio.ko:\n"},
		file{name: "lib/modules/6.1.0-test/kernel/virtio.ko", data: "\x7fELF module"},
	)
	push := func(ref string, img v1.Image) {
		r, err := name.ParseReference(host+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	push("keel/kernel:test", image(t, nil, []file{
		{name: "kernel", data: "bzImage bytes"},
		{name: "kernel.tar", data: string(modules)},
	}))
	initImg := image(t, []string{"/init"}, []file{
		{name: "init", data: "#!pid1", mode: 0o755},
		{name: "sbin/", dir: true},
		{name: "sbin/init", symlink: "../init"},
		{name: "etc/", dir: true},
		{name: "etc/hostname", data: "from-image\n"},
	})
	// keel:old is an init that declares no features, as LinuxKit's.
	push("keel/init:old", initImg)
	cf, err := initImg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{bundle.InitFeaturesLabel: bundle.FeatureRootfsLower}
	initImg, err = mutate.Config(initImg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	push("keel/init:test", initImg)
	push("keel/busybox:test", image(t, []string{"/bin/sh"},
		[]file{
			{name: "bin/", dir: true},
			{name: "bin/busybox", data: "BUSYBOX", mode: 0o755},
			{name: "bin/sh", link: "bin/busybox"},
			{name: "tmp/junk", data: "junk"},
		},
		[]file{
			{name: "tmp/.wh.junk"},
			{name: "bin/ls", link: "bin/busybox"},
		},
	))
	return srv, host
}

const testYAML = `
kernel:
  image: {{R}}/keel/kernel:test
  cmdline: console=ttyS0 quiet
init:
  - {{R}}/keel/init:test
onboot:
  - name: hello
    image: {{R}}/keel/busybox:test
    command: [/bin/sh, -c, "echo hello"]
  - name: netns
    image: {{R}}/keel/busybox:test
    net: host
onshutdown:
  - name: bye
    image: {{R}}/keel/busybox:test
    command: [/bin/echo, bye]
services:
  - name: getty
    image: {{R}}/keel/busybox:test
    capabilities: [all]
    binds: [/var/log:/var/log]
files:
  - path: etc/hostname
    contents: keel
  - path: /etc/keel/empty
    directory: true
  - path: usr/bin/sh
    symlink: /bin/busybox
`

func cpioListing(t *testing.T, initrdPath string) (names []string, root string) {
	t.Helper()
	f, err := os.Open(initrdPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The initrd is several cpio archives one after the other (one per
	// segment); GNU cpio stops at the first trailer, so each is given to it
	// on its own.
	var archives [][]byte
	for len(raw) > 0 {
		i := bytes.Index(raw, []byte("TRAILER!!!\x00"))
		if i < 110 {
			t.Fatalf("initrd: no cpio trailer in the last %d bytes", len(raw))
		}
		end := i + 11 + (4-(i+11)%4)%4
		archives = append(archives, raw[:end])
		raw = bytes.TrimLeft(raw[end:], "\x00")
	}
	run := func(dir string, args ...string) string {
		var all strings.Builder
		for _, a := range archives {
			cmd := exec.Command("cpio", args...)
			cmd.Dir, cmd.Stdin = dir, bytes.NewReader(a)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("cpio %v: %v\n%s", args, err, errb.String())
			}
			all.WriteString(out.String())
		}
		return all.String()
	}
	names = strings.Fields(run(t.TempDir(), "-t", "--quiet"))
	root = t.TempDir()
	// No device nodes without root: extract everything else.
	run(root, "-idm", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	return names, root
}

func TestBuildEndToEnd(t *testing.T) {
	testenv.Tool(t, "cpio", "cpio")
	srv, host := testImages(t)
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := t.TempDir()
	yml := filepath.Join(dir, "demo.yml")
	if err := os.WriteFile(yml, []byte(strings.ReplaceAll(testYAML, "{{R}}", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	out1 := initrd.Outputs{Dir: filepath.Join(dir, "out1"), Name: "demo"}
	var progress bytes.Buffer
	if err := build(context.Background(), []string{yml}, out1, buildOptions{progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(progress.String(), "pull "); n != 3 {
		t.Errorf("%d pulls, want 3 (each image once):\n%s", n, progress.String())
	}

	if b, _ := os.ReadFile(out1.Kernel()); string(b) != "bzImage bytes" {
		t.Errorf("kernel = %q", b)
	}
	if b, _ := os.ReadFile(out1.Cmdline()); string(b) != "console=ttyS0 quiet\n" {
		t.Errorf("cmdline = %q", b)
	}
	names, root := cpioListing(t, out1.Initrd())
	set := map[string]bool{}
	for _, n := range names {
		if set[n] {
			t.Errorf("%s listed twice", n)
		}
		set[n] = true
	}
	// The four bundles are of one image, writable: the image is stored
	// once, and each rootfs is an empty mount point for an overlay of it.
	rt, err := bundle.ReadRuntime(filepath.Join(root, "containers/onboot/000-hello/runtime.json"))
	if err != nil {
		t.Fatal(err)
	}
	image := strings.TrimPrefix(rt.RootfsLower, "/")
	if !strings.HasPrefix(rt.RootfsLower, bundle.ImagesDir+"/") {
		t.Errorf("hello's rootfsLower is %q, want the shared image under %s", rt.RootfsLower, bundle.ImagesDir)
	}
	for _, want := range []string{
		"dev", "dev/console", "init", "sbin/init", "etc/hostname", "etc/keel/empty", "usr/bin/sh",
		"lib/modules/6.1.0-test/modules.dep", "lib/modules/6.1.0-test/kernel/virtio.ko",
		"containers/onboot/000-hello/config.json", "containers/onboot/000-hello/runtime.json",
		"containers/onboot/000-hello/rootfs", "containers/onboot/001-netns/rootfs",
		"containers/onshutdown/000-bye/config.json", "containers/onshutdown/000-bye/rootfs",
		"containers/services/getty/config.json", "containers/services/getty/rootfs",
		image + "/bin/busybox", image + "/bin/sh", image + "/bin/ls",
	} {
		if !set[want] {
			t.Errorf("%s missing from the initrd:\n%s", want, strings.Join(names, "\n"))
		}
	}
	if set[image+"/tmp/junk"] {
		t.Error("whited-out tmp/junk is in the initrd")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "keel" {
		t.Errorf("etc/hostname = %q: files must override the init image", b)
	}
	sh, err1 := os.Stat(filepath.Join(root, image, "bin/sh"))
	bb, err2 := os.Stat(filepath.Join(root, image, "bin/busybox"))
	if err1 != nil || err2 != nil || !os.SameFile(sh, bb) {
		t.Errorf("bin/sh is not a hard link of bin/busybox: %v %v", err1, err2)
	}

	spec, err := bundle.ReadConfig(filepath.Join(root, "containers/onboot/000-hello/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spec.Process.Args, " "); got != "/bin/sh -c echo hello" {
		t.Errorf("hello args = %q", got)
	}
	if spec.Root.Path != "rootfs" || spec.Linux.CgroupsPath != "/onboot/hello" {
		t.Errorf("hello root %+v cgroupsPath %q", spec.Root, spec.Linux.CgroupsPath)
	}
	netns, err := bundle.ReadConfig(filepath.Join(root, "containers/onboot/001-netns/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range netns.Linux.Namespaces {
		if ns.Type == "network" {
			t.Error("net: host bundle has a network namespace")
		}
	}
	if got := strings.Join(netns.Process.Args, " "); got != "/bin/sh" {
		t.Errorf("netns args = %q, want the image's cmd", got)
	}
	if _, err := bundle.ReadRuntime(filepath.Join(root, "containers/services/getty/runtime.json")); err != nil {
		t.Error(err)
	}

	// -pull fetches again even though everything is cached.
	progress.Reset()
	if err := build(context.Background(), []string{yml}, initrd.Outputs{Dir: filepath.Join(dir, "pulled"), Name: "demo"}, buildOptions{progress: &progress, pull: true}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(progress.String(), "pull "); n != 3 {
		t.Errorf("-pull: %d pulls, want 3:\n%s", n, progress.String())
	}

	// A second build works offline, from the cache, and writes the same bytes.
	srv.Close()
	out2 := initrd.Outputs{Dir: filepath.Join(dir, "out2"), Name: "demo"}
	progress.Reset()
	if err := build(context.Background(), []string{yml}, out2, buildOptions{progress: &progress}); err != nil {
		t.Fatalf("second build, offline: %v", err)
	}
	if strings.Contains(progress.String(), "pull ") {
		t.Errorf("second build pulled:\n%s", progress.String())
	}
	for _, pair := range [][2]string{
		{out1.Kernel(), out2.Kernel()}, {out1.Initrd(), out2.Initrd()}, {out1.Cmdline(), out2.Cmdline()},
	} {
		// Two missing outputs read as equal: the errors count.
		a, err := os.ReadFile(pair[0])
		if err != nil {
			t.Fatalf("first build's output: %v", err)
		}
		b, err := os.ReadFile(pair[1])
		if err != nil {
			t.Fatalf("second build's output: %v", err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ", pair[0], pair[1])
		}
	}
	leftovers, err := filepath.Glob(filepath.Join(out2.Dir, ".*"))
	if err != nil {
		t.Fatalf("look for temporary files in %s: %v", out2.Dir, err)
	}
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestBuildReportsBadYAML(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "bad.yml")
	os.WriteFile(yml, []byte("kernel:\n  image: k\n  cmdlin: x\ninit: [i]\n"), 0o644)
	err := dispatch([]string{"build", "-dir", dir, yml})
	want := yml + `:3:3: kernel: unknown key "cmdlin" (did you mean "cmdline"?)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	if err := dispatch([]string{"validate", yml}); err == nil || err.Error() != want {
		t.Errorf("validate error = %v, want %s", err, want)
	}
}

func TestDispatch(t *testing.T) {
	for args, want := range map[string]string{
		"frobnicate":  "unknown command \"frobnicate\" (see `keel --help`)",
		"buidl x.yml": "unknown command \"buidl\"; did you mean build? (see `keel --help`)",
		"":            "want a command: build, cache, completion, push, run, validate, version (see `keel --help`)",
		"cache":       "cache: want a command: clean, export, import, ls, pull, push, rm (see `keel cache --help`)",
	} {
		err := dispatch(strings.Fields(args))
		if err == nil || !errors.As(err, new(usageError)) || err.Error() != want {
			t.Errorf("keel %s: error %v, want the usage error %s", args, err, want)
		}
	}
	for file, want := range map[string]string{"a/demo.yml": "demo", "x.yaml": "x", "noext": "noext", "/p/.yml": ".yml"} {
		if got := outputName(file); got != want {
			t.Errorf("outputName(%q) = %q, want %q", file, got, want)
		}
	}
}
