package initrd

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
	"github.com/keel-os/keel/pkg/kmod"
)

// testImage makes a one-layer image of the entries (see tarEntry).
func testImage(t *testing.T, entries ...tarEntry) v1.Image {
	t.Helper()
	l := tarLayer(t, "test", entries...)
	layer, err := tarball.LayerFromOpener(l.Open)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tarBytesOf(t *testing.T, entries ...tarEntry) string {
	t.Helper()
	rc, _ := tarLayer(t, "x", entries...).Open()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// testBuild is a small but complete build: a kernel image with modules
// and microcode, an init image, and three bundles.
func testBuild(t *testing.T) Build {
	t.Helper()
	kernel := testImage(t,
		tarEntry{"kernel", "bzImage"},
		tarEntry{"kernel.tar", tarBytesOf(t,
			tarEntry{"lib/modules/6.1.0-t/", ""},
			tarEntry{"lib/modules/6.1.0-t/kernel/virtio_net.ko", "not ELF"},
			tarEntry{"lib/modules/6.1.0-t/modules.builtin", "kernel/fs/ext4/ext4.ko\n"})},
		tarEntry{"ucode.cpio", "070701 early microcode, 30 B!!"})
	initImg := testImage(t, tarEntry{"init", "#!pid1"}, tarEntry{"sbin/", ""}, tarEntry{"sbin/init=>init", ""})
	busybox := testImage(t, tarEntry{"bin/", ""}, tarEntry{"bin/busybox", "busybox"}, tarEntry{"bin/sh=>bin/busybox", ""})
	other := testImage(t, tarEntry{"bin/", ""}, tarEntry{"bin/getty", "getty"})
	spec := func(args ...string) *specs.Spec {
		return &specs.Spec{Version: specs.Version, Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: args}}
	}
	return Build{
		Kernel:      Image{Ref: "keel/kernel:t", Image: kernel},
		KernelFiles: KernelFiles{UCode: "ucode.cpio"},
		Cmdline:     "console=ttyS0",
		Mtime:       1700000000,
		Contents: Contents{
			Init: []Image{{Ref: "keel/init:t", Image: initImg}},
			Bundles: []Bundle{
				{Kind: bundle.Onboot, Dir: "000-hello", Image: Image{Ref: "busybox", Image: busybox}, Config: spec("echo", "hello")},
				{Kind: bundle.Onboot, Dir: "001-bye", Image: Image{Ref: "busybox", Image: busybox}, Config: spec("echo", "bye")},
				{Kind: bundle.Service, Dir: "getty", Image: Image{Ref: "other", Image: other}, Config: spec("getty")},
			},
			Overlays: true,
		},
	}
}

// sharedImageDir is where the initrd stores img for the writable bundles
// that share it.
func sharedImageDir(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return bundle.ImagePath(d.Hex)[1:]
}

// readInitrd lists every entry of an initrd (microcode cpio first, then
// the compressed segments), with the data of regular files.
func readInitrd(t *testing.T, c Compression, b []byte) (names []string, data map[string]string) {
	t.Helper()
	data = map[string]string{}
	// The microcode archive is uncompressed and comes first.
	if bytes.HasPrefix(b, []byte("070701 early")) {
		b = bytes.TrimLeft(b[len("070701 early microcode, 30 B!!"):], "\x00")
	}
	raw := decompress(t, c, b)
	cr := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Mode&cpio.ModeType == cpio.ModeRegular {
			d, err := io.ReadAll(cr)
			if err != nil {
				t.Fatal(err)
			}
			data[h.Name] = string(d)
		}
	}
	return names, data
}

func TestWriteSegmentsAreCachedAndIncremental(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "segments")
	build := func(dir, cache string, b Build) (SegmentStats, []byte) {
		t.Helper()
		var st SegmentStats
		b.SegmentCache, b.Stats = cache, &st
		o := Outputs{Dir: dir, Name: "x"}
		if err := Write(o, b); err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(o.Initrd())
		if err != nil {
			t.Fatal(err)
		}
		return st, img
	}
	count := func() int { // segments, not their sidecars
		es, _ := os.ReadDir(cache)
		n := 0
		for _, e := range es {
			if filepath.Ext(e.Name()) != tmpfsBytesExt && filepath.Ext(e.Name()) != xattrWarningsExt {
				n++
			}
		}
		return n
	}
	// Segments: the root, the two bundles of busybox, getty.
	b := testBuild(t)
	st, first := build(t.TempDir(), cache, b)
	if (st.Written != 3 || st.Reused != 0) || count() != 3 {
		t.Fatalf("cold build: %+v, %d files in the cache, want 3 written", st, count())
	}
	st, again := build(t.TempDir(), cache, b)
	if (st.Written != 0 || st.Reused != 3) || !bytes.Equal(first, again) {
		t.Fatalf("warm build: %+v, same bytes %v", st, bytes.Equal(first, again))
	}
	// One service changed: only its segment is made.
	b.Contents.Bundles[2].Config.Process.Args = []string{"getty", "-L"}
	st, changed := build(t.TempDir(), cache, b)
	if (st.Written != 1 || st.Reused != 2) || count() != 4 {
		t.Fatalf("one service changed: %+v, %d files in the cache, want 1 written, 2 reused, 4 files", st, count())
	}
	// And the result is the same as a build from nothing.
	st, fresh := build(t.TempDir(), filepath.Join(t.TempDir(), "other"), b)
	if st.Written != 3 || !bytes.Equal(changed, fresh) {
		t.Fatalf("incremental build differs from a fresh one (%+v)", st)
	}
	// And the same as a build with no cache at all.
	_, nocache := build(t.TempDir(), "", b)
	if !bytes.Equal(changed, nocache) {
		t.Fatal("a build without the segment cache differs")
	}
}

func TestWriteInitrdContents(t *testing.T) {
	for _, c := range Compressions {
		t.Run(string(c), func(t *testing.T) {
			b := testBuild(t)
			b.Compression = c
			o := Outputs{Dir: t.TempDir(), Name: "x"}
			if err := Write(o, b); err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(o.Initrd())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(img, []byte("070701 early microcode, 30 B!!\x00\x00")) {
				t.Errorf("initrd does not start with the microcode, padded: %q", img[:40])
			}
			names, data := readInitrd(t, c, img)
			seen := map[string]bool{}
			for _, n := range names {
				if seen[n] {
					t.Errorf("%s written twice", n)
				}
				seen[n] = true
			}
			shared := sharedImageDir(t, b.Contents.Bundles[0].Image.Image)
			for _, want := range []string{
				"init", "sbin/init", "dev/console", "lib/modules/6.1.0-t/kernel/virtio_net.ko", kmod.IndexPath,
				"containers", "containers/onboot", "containers/services",
				"containers/onboot/000-hello/config.json", "containers/onboot/000-hello/rootfs",
				shared + "/bin/sh", "containers/onboot/001-bye/rootfs", "containers/services/getty/rootfs/bin/getty",
			} {
				if !seen[want] {
					t.Errorf("%s missing: %q", want, names)
				}
			}
			ix, err := kmod.ReadIndex(strings.NewReader(data[kmod.IndexPath]))
			if err != nil {
				t.Fatal(err)
			}
			k, ok := ix.Kernel("6.1.0-t")
			if !ok || len(k.Modules) != 1 || k.Modules[0].Name != "virtio_net" || k.Modules[0].Path != "kernel/virtio_net.ko" ||
				!reflect.DeepEqual(k.Builtin, []string{"ext4"}) {
				t.Errorf("module index: %s", data[kmod.IndexPath])
			}
		})
	}
}

func TestWriteFormats(t *testing.T) {
	b := testBuild(t)
	o := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelInitrd, FormatTar, FormatTarKernelInitrd, FormatTar}}
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(o.Dir)
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if want := []string{"x-cmdline", "x-initrd.img", "x-initrd.tar", "x-kernel", "x.tar"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("outputs %q, want %q (nothing else left behind)", got, want)
	}
	readTar := func(p string) (names []string, hs map[string]*tar.Header, data map[string]string) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		hs, data = map[string]*tar.Header{}, map[string]string{}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, _ := io.ReadAll(tr)
			names = append(names, h.Name)
			hs[h.Name], data[h.Name] = h, string(d)
		}
	}
	names, _, data := readTar(o.KernelInitrdTar())
	kernel, _ := os.ReadFile(o.Kernel())
	initrd, _ := os.ReadFile(o.Initrd())
	if !reflect.DeepEqual(names, []string{"kernel", "initrd.img", "cmdline"}) || data["kernel"] != string(kernel) ||
		data["initrd.img"] != string(initrd) || data["cmdline"] != "console=ttyS0\n" {
		t.Errorf("tar-kernel-initrd holds %q", names)
	}
	names, hs, data := readTar(o.Tar())
	sort.Strings(names)
	shared := sharedImageDir(t, b.Contents.Bundles[0].Image.Image)
	for _, want := range []string{"boot/", "boot/kernel", "boot/cmdline", "boot/ucode.cpio", "init", "sbin/init", "dev/console",
		shared + "/bin/sh", "containers/onboot/000-hello/rootfs/", kmod.IndexPath} {
		if hs[want] == nil {
			t.Errorf("tar lacks %s: %q", want, names)
		}
	}
	if h := hs[shared+"/bin/sh"]; h != nil && (h.Typeflag != tar.TypeLink || h.Linkname != shared+"/bin/busybox") {
		t.Errorf("bin/sh is %q -> %q, want a hard link to bin/busybox", h.Typeflag, h.Linkname)
	}
	if h := hs["dev/console"]; h != nil && (h.Typeflag != tar.TypeChar || h.Devmajor != 5 || h.Devminor != 1) {
		t.Errorf("dev/console = %+v", h)
	}
	if data["boot/kernel"] != "bzImage" {
		t.Errorf("boot/kernel = %q", data["boot/kernel"])
	}
	dirs := 0
	for _, n := range names {
		if n == "containers/" {
			dirs++
		}
	}
	if dirs != 1 {
		t.Errorf("containers/ written %d times", dirs)
	}
}

func TestWriteKernelFiles(t *testing.T) {
	b := testBuild(t)
	b.Kernel.Image = testImage(t, tarEntry{"boot/vmlinuz", "bz"}, tarEntry{"mods.tar", tarBytesOf(t, tarEntry{"lib/modules/r/x.ko", "x"})})
	b.KernelFiles = KernelFiles{Binary: "boot/vmlinuz", Tar: "mods.tar"}
	o := Outputs{Dir: t.TempDir(), Name: "x"}
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	if k, _ := os.ReadFile(o.Kernel()); string(k) != "bz" {
		t.Errorf("kernel = %q", k)
	}
	img, _ := os.ReadFile(o.Initrd())
	_, data := readInitrd(t, Gzip, img)
	if data["lib/modules/r/x.ko"] != "x" {
		t.Error("modules of the renamed tar missing")
	}
	// tar: none leaves the modules (and their index) out.
	b.KernelFiles.Tar = "none"
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	img, _ = os.ReadFile(o.Initrd())
	if _, data = readInitrd(t, Gzip, img); data["lib/modules/r/x.ko"] != "" || data[kmod.IndexPath] != "" {
		t.Error("tar: none still has modules")
	}
	for _, kf := range []KernelFiles{{Binary: "vmlinuz"}, {Binary: "boot/vmlinuz", Tar: "kernel.tar"}, {Binary: "boot/vmlinuz", UCode: "intel.cpio"}} {
		b.KernelFiles = kf
		err := Write(Outputs{Dir: t.TempDir(), Name: "y"}, b)
		if err == nil || !strings.Contains(err.Error(), "has no /") {
			t.Errorf("%+v: error %v, want a missing file", kf, err)
		}
	}
}

// Read-only bundles of one image share a segment in which the image's
// files are stored once: the second rootfs links to the first's inodes.
func TestReadonlyBundlesOfOneImageStoreFilesOnce(t *testing.T) {
	b := testBuild(t)
	var st SegmentStats
	b.Stats = &st
	for i := range b.Contents.Bundles[:2] {
		b.Contents.Bundles[i].Config.Root.Readonly = true
		b.Contents.Bundles[i].Config.Mounts = []specs.Mount{{Destination: "/dev"}, {Destination: "/sys/fs/cgroup"}, {Destination: "/bin/busybox"}}
	}
	o := Outputs{Dir: t.TempDir(), Name: "x"}
	if err := Write(o, b); err != nil {
		t.Fatal(err)
	}
	if st.Written != 3 {
		t.Errorf("%d segments, want 3: root, the two busybox bundles, getty", st.Written)
	}
	img, _ := os.ReadFile(o.Initrd())
	img = bytes.TrimLeft(img[len("070701 early microcode, 30 B!!"):], "\x00")
	cr := cpio.NewReader(bytes.NewReader(decompress(t, Gzip, img)))
	type entry struct {
		archive    int
		ino, nlink uint32
		size       int64
	}
	got := map[string]entry{}
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = entry{cr.Archive, h.Ino, h.Nlink, h.Size}
	}
	// busybox and its hard link sh, in two rootfs: one inode, four names,
	// the data once.
	names := []string{"000-hello/rootfs/bin/busybox", "000-hello/rootfs/bin/sh", "001-bye/rootfs/bin/busybox", "001-bye/rootfs/bin/sh"}
	first := got["containers/onboot/"+names[0]]
	if first.size != int64(len("busybox")) || first.nlink != 4 {
		t.Errorf("%s: %+v, want the data and 4 links", names[0], first)
	}
	for _, n := range names[1:] {
		e := got["containers/onboot/"+n]
		if e.archive != first.archive || e.ino != first.ino || e.nlink != 4 || e.size != 0 {
			t.Errorf("%s: %+v, want a link to %+v", n, e, first)
		}
	}
	// A read-only rootfs gets its mount points; what exists stays.
	for _, n := range []string{"000-hello/rootfs/dev", "001-bye/rootfs/sys/fs/cgroup"} {
		if _, ok := got["containers/onboot/"+n]; !ok {
			t.Errorf("mount point %s missing", n)
		}
	}
	if e := got["containers/onboot/"+names[0]]; e.size == 0 {
		t.Error("the mount point replaced bin/busybox")
	}
	if e := got["containers/onboot/001-bye/config.json"]; e.size == 0 {
		t.Error("the second bundle has no config.json of its own")
	}
}

// Extended attributes go into the initrd as a manifest per segment, in
// the directory the root segment makes; each build warns of those a tmpfs
// root may not hold, warm builds included.
func TestWriteKeepsXattrs(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": pingCap, "SCHILY.xattr.user.x": "u"}})
	tw.Write([]byte("ping"))
	tw.Close()
	b := testBuild(t)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	if b.Contents.Bundles[2].Image.Image, err = mutate.AppendLayers(empty.Image, layer); err != nil {
		t.Fatal(err)
	}
	b.SegmentCache = t.TempDir()
	b.Compression = Zstd
	manifest := "etc/keel/xattrs.d/%2Fcontainers%2Fservices%2Fgetty%2Frootfs"
	wantManifest := "keel-xattrs 1\n" +
		`"containers/services/getty/rootfs/bin/ping" "security.capability" "\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"` + "\n" +
		`"containers/services/getty/rootfs/bin/ping" "user.x" "u"` + "\n"
	want := []string{`other: extended attributes a tmpfs root holds only from Linux 6.6 on (user.*), set at boot where the kernel can (PID 1 logs each it cannot): "bin/ping" (user.x)`}
	for _, run := range []string{"cold", "warm"} {
		var st SegmentStats
		b.Stats = &st
		o := Outputs{Dir: t.TempDir(), Name: "x"}
		if err := Write(o, b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(st.XattrWarnings, want) {
			t.Errorf("%s build: warnings %q, want %q", run, st.XattrWarnings, want)
		}
		img, err := os.ReadFile(o.Initrd())
		if err != nil {
			t.Fatal(err)
		}
		names, data := readInitrd(t, b.Compression, img)
		if !slices.Contains(names, "etc/keel/xattrs.d") {
			t.Errorf("%s build: no etc/keel/xattrs.d directory", run)
		}
		if data[manifest] != wantManifest {
			t.Errorf("%s build: %s:\n%s\nwant\n%s", run, manifest, data[manifest], wantManifest)
		}
	}
}

func TestPruneSegments(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{
		"fresh.cpio.gz": time.Hour, "old.cpio.gz": 31 * 24 * time.Hour, "old.cpio.gz.dropped": 31 * 24 * time.Hour,
		".segment-123": 25 * time.Hour, ".segment-456": time.Hour,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, nil, 0o644)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	pruneSegments(dir, now)
	es, _ := os.ReadDir(dir)
	var left []string
	for _, e := range es {
		left = append(left, e.Name())
	}
	if want := []string{".segment-456", "fresh.cpio.gz"}; !reflect.DeepEqual(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}
