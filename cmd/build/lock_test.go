package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/oci"
)

// Each build writes NAME.lock.json; -lock rebuilds with those digests even
// after a tag has moved, byte for byte.
func TestBuildLock(t *testing.T) {
	_, host := testImages(t)
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := t.TempDir()
	yml := filepath.Join(dir, "demo.yml")
	if err := os.WriteFile(yml, []byte(strings.ReplaceAll(testYAML, "{{R}}", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	out1 := initrd.Outputs{Dir: filepath.Join(dir, "out1"), Name: "demo"}
	if err := build(context.Background(), []string{yml}, out1, buildOptions{}); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(out1.Dir, "demo.lock.json")
	l, err := oci.ReadLock(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	bb := host + "/keel/busybox:test"
	if len(l.Images) != 3 || l.Images[bb] == "" || l.Arch != "amd64" || l.Keel == "" || l.Kernel != host+"/keel/kernel:test" {
		t.Fatalf("lock %+v", l)
	}

	// The tag moves: a new busybox image.
	r, _ := name.ParseReference(bb, name.Insecure)
	if err := remote.Write(r, image(t, []string{"/bin/sh"}, []file{{name: "moved", data: "new"}})); err != nil {
		t.Fatal(err)
	}
	out2 := initrd.Outputs{Dir: filepath.Join(dir, "out2"), Name: "demo"}
	if err := build(context.Background(), []string{yml}, out2, buildOptions{pull: true, lock: lockFile}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out1.Initrd())
	b, _ := os.ReadFile(out2.Initrd())
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("-lock build differs from the locked one")
	}
	out3 := initrd.Outputs{Dir: filepath.Join(dir, "out3"), Name: "demo"}
	if err := build(context.Background(), []string{yml}, out3, buildOptions{pull: true}); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(out3.Initrd()); bytes.Equal(a, c) {
		t.Error("unlocked -pull build did not see the moved tag")
	}
}
