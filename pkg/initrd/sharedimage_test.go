package initrd

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
)

// cpioEntry is one entry of an initrd read back, with its data.
type cpioEntry struct {
	cpio.Header
	archive int
	data    string
}

// readCPIO reads every entry of the uncompressed initrd c makes.
func readCPIO(t *testing.T, c Contents) (names []string, got map[string]cpioEntry) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, c, 1700000000); err != nil {
		t.Fatal(err)
	}
	got = map[string]cpioEntry{}
	cr := cpio.NewReader(&buf)
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return names, got
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(cr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[h.Name]; dup {
			t.Errorf("%s written twice", h.Name)
		}
		names = append(names, h.Name)
		got[h.Name] = cpioEntry{*h, cr.Archive, string(d)}
	}
}

// Writable bundles of one image share it through an overlay that PID 1
// makes: the image is stored once in containers/images/<hex>, each
// writable rootfs is an empty mount point and its runtime.json names the
// shared directory; a read-only bundle of the same image links to it.
func TestWritableBundlesOfOneImageShareALowerDir(t *testing.T) {
	b := testBuild(t)
	busybox := b.Contents.Bundles[0].Image
	ro := &specs.Spec{Version: specs.Version, Root: &specs.Root{Path: "rootfs", Readonly: true}, Process: &specs.Process{Args: []string{"sh"}}}
	b.Contents.Bundles = append(b.Contents.Bundles,
		Bundle{Kind: bundle.Service, Dir: "ro", Image: busybox, Config: ro})
	b.Contents.Bundles[1].Runtime = &bundle.Runtime{OnFailure: bundle.OnFailureHalt}
	shared := sharedImageDir(t, busybox.Image)

	names, got := readCPIO(t, b.Contents)
	if e, ok := got[bundle.ImagesDir[1:]]; !ok || e.archive != 0 {
		t.Errorf("%s: %+v, want it in the root segment", bundle.ImagesDir, e)
	}
	// The data once, in the shared directory; sh is a hard link to busybox
	// there and in the read-only rootfs.
	data := 0
	for _, e := range got {
		if e.data == "busybox" {
			data++
		}
	}
	if data != 1 {
		t.Errorf("busybox's data stored %d times, want once", data)
	}
	lower := got[shared+"/bin/busybox"]
	if lower.data != "busybox" || lower.Nlink != 4 {
		t.Errorf("%s/bin/busybox: %+v, want the data and 4 names", shared, lower.Header)
	}
	for _, n := range []string{shared + "/bin/sh", "containers/services/ro/rootfs/bin/busybox", "containers/services/ro/rootfs/bin/sh"} {
		if e := got[n]; e.archive != lower.archive || e.Ino != lower.Ino || e.Size != 0 {
			t.Errorf("%s: %+v, want a link to %+v", n, e.Header, lower.Header)
		}
	}
	// Each writable rootfs is an empty directory naming the shared one.
	for _, dir := range []string{"containers/onboot/000-hello", "containers/onboot/001-bye"} {
		if e, ok := got[dir+"/rootfs"]; !ok || e.Mode&cpio.ModeType != cpio.ModeDir || e.archive != lower.archive {
			t.Errorf("%s/rootfs: %+v, want a directory in the image's segment", dir, e.Header)
		}
		for _, n := range names {
			if strings.HasPrefix(n, dir+"/rootfs/") {
				t.Errorf("%s: a writable rootfs of a shared image must be empty", n)
			}
		}
		rt := readRuntime(t, got[dir+"/"+bundle.RuntimeFile].data)
		if rt.RootfsLower != "/"+shared {
			t.Errorf("%s: rootfsLower %q, want %q", dir, rt.RootfsLower, "/"+shared)
		}
	}
	if rt := readRuntime(t, got["containers/onboot/001-bye/"+bundle.RuntimeFile].data); rt.OnFailure != bundle.OnFailureHalt {
		t.Errorf("the rest of runtime.json was lost: %+v", rt)
	}
	// The read-only bundle keeps a rootfs of its own, and the image used
	// once (getty) is in its rootfs, as in LinuxKit.
	for _, dir := range []string{"containers/services/ro", "containers/services/getty"} {
		if rt := readRuntime(t, got[dir+"/"+bundle.RuntimeFile].data); rt.RootfsLower != "" {
			t.Errorf("%s: rootfsLower %q, want none", dir, rt.RootfsLower)
		}
	}
	if got["containers/services/getty/rootfs/bin/getty"].data != "getty" {
		t.Error("getty's rootfs lacks its files")
	}
	if b.Contents.Bundles[0].Runtime != nil || b.Contents.Bundles[1].Runtime.RootfsLower != "" {
		t.Error("the caller's bundles were changed")
	}
}

func readRuntime(t *testing.T, data string) *bundle.Runtime {
	t.Helper()
	var rt bundle.Runtime
	if err := json.Unmarshal([]byte(data), &rt); err != nil {
		t.Fatalf("runtime.json %q: %v", data, err)
	}
	return &rt
}

// A bundle turning writable changes its group's layout: the segment's key
// changes with it, so a warm cache never serves the old layout.
func TestSharedImageLayoutChangesTheSegmentKey(t *testing.T) {
	b := testBuild(t)
	for i := range b.Contents.Bundles[:2] {
		b.Contents.Bundles[i].Config.Root.Readonly = true
	}
	keys := func() map[string]bool {
		segs, err := b.Contents.segments()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range segs {
			out[s.key] = true
		}
		return out
	}
	before := keys()
	b.Contents.Bundles[1].Config.Root.Readonly = false
	after := keys()
	changed := 0
	for k := range after {
		if !before[k] {
			changed++
		}
	}
	// The root (it now has containers/images) and the busybox segment.
	if changed != 2 || len(after) != 3 {
		t.Errorf("%d of %d keys changed, want 2 of 3", changed, len(after))
	}
}
