package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/testenv"
)

// An init image that does not declare bundle.FeatureRootfsLower (LinuxKit's
// init, an older keel's) gets bundles it can run: each writable bundle
// holds its image in its own rootfs, with no rootfsLower and no shared
// image directory.
func TestBuildWithoutOverlayFeatureCopiesImages(t *testing.T) {
	testenv.Tool(t, "cpio", "cpio")
	_, host := testImages(t)
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	dir := t.TempDir()
	yml := filepath.Join(dir, "old.yml")
	y := strings.ReplaceAll(strings.ReplaceAll(testYAML, "{{R}}", host), "keel/init:test", "keel/init:old")
	if !strings.Contains(y, "keel/init:old") {
		t.Fatal("testYAML does not use keel/init:test")
	}
	if err := os.WriteFile(yml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out := initrd.Outputs{Dir: filepath.Join(dir, "out"), Name: "old"}
	if err := build(context.Background(), []string{yml}, out, buildOptions{}); err != nil {
		t.Fatal(err)
	}
	names, root := cpioListing(t, out.Initrd())
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
		if strings.HasPrefix("/"+n, bundle.ImagesDir) {
			t.Errorf("%s in the initrd of an init without overlays", n)
		}
	}
	for _, b := range []string{"onboot/000-hello", "onboot/001-netns", "onshutdown/000-bye", "services/getty"} {
		if !set["containers/"+b+"/rootfs/bin/busybox"] {
			t.Errorf("%s has no copy of its image", b)
		}
		rt, err := bundle.ReadRuntime(filepath.Join(root, "containers", b, "runtime.json"))
		if err != nil {
			t.Fatal(err)
		}
		if rt.RootfsLower != "" {
			t.Errorf("%s: rootfsLower %q for an init that cannot mount it", b, rt.RootfsLower)
		}
	}
}
