package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-os/keel/pkg/initrd"
)

// needRoot skips tests that mount filesystems.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: mounts a small or read-only tmpfs as the output")
	}
}

// smallTmpfs mounts a tmpfs of size bytes (with opts) on a new directory.
func smallTmpfs(t *testing.T, size string, flags uintptr) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// bigYAML is testYAML with a file of incompressible contents, so that the
// initrd is some hundreds of kilobytes.
func bigYAML(t *testing.T, host string) string {
	t.Helper()
	noise := make([]byte, 300<<10)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	y := strings.ReplaceAll(testYAML, "{{R}}", host)
	return y + "  - path: etc/noise\n    contents: " + base64.StdEncoding.EncodeToString(noise) + "\n"
}

// entries lists a directory's names, hidden ones included.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// A full disk, or a read-only one, at the output fails the build with an
// error naming the file; nothing is left there, half-written or whole,
// and the cache still serves the next build.
func TestBuildOutputDiskFullOrReadOnly(t *testing.T) {
	needRoot(t)
	_, host := testImages(t)
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	dir := t.TempDir()
	yml := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(yml, []byte(bigYAML(t, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(testYAML, "\nfiles:\n") {
		t.Fatal("testYAML has no files: section to add to")
	}

	full := smallTmpfs(t, "64k", 0)
	err := build(context.Background(), []string{yml}, initrd.Outputs{Dir: full, Name: "big"}, buildOptions{})
	if err == nil {
		t.Fatal("build into a 64k filesystem succeeded")
	}
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), full) {
		t.Errorf("full disk: error %q, want ENOSPC naming %s", err, full)
	}
	t.Logf("full disk: %v", err)
	if names := entries(t, full); len(names) != 0 {
		t.Errorf("left in the full output directory: %q", names)
	}

	ro := smallTmpfs(t, "1m", unix.MS_RDONLY)
	err = build(context.Background(), []string{yml}, initrd.Outputs{Dir: ro, Name: "big"}, buildOptions{})
	if err == nil || !errors.Is(err, unix.EROFS) || !strings.Contains(err.Error(), ro) {
		t.Errorf("read-only output: error %v, want EROFS naming %s", err, ro)
	}
	t.Logf("read-only output: %v", err)

	good := filepath.Join(dir, "good")
	if err := build(context.Background(), []string{yml}, initrd.Outputs{Dir: good, Name: "big"}, buildOptions{}); err != nil {
		t.Fatalf("build after the failures: %v", err)
	}
	if names, _ := cpioListing(t, filepath.Join(good, "big-initrd.img")); !contains(names, "etc/noise") {
		t.Errorf("etc/noise missing from the initrd built after the failures")
	}
}

// A cache on a full disk fails the build clearly and is left consistent:
// once there is room, the same cache builds.
func TestBuildCacheDiskFull(t *testing.T) {
	needRoot(t)
	_, host := testImages(t)
	cacheFS := smallTmpfs(t, "8k", 0)
	t.Setenv("KEEL_CACHE", filepath.Join(cacheFS, "cache"))
	dir := t.TempDir()
	yml := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(yml, []byte(bigYAML(t, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := initrd.Outputs{Dir: filepath.Join(dir, "out"), Name: "big"}
	err := build(context.Background(), []string{yml}, out, buildOptions{})
	if err == nil || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("build with a full cache: error %v, want ENOSPC", err)
	}
	t.Logf("full cache: %v", err)
	if _, serr := os.Stat(out.Initrd()); serr == nil {
		t.Errorf("an initrd was written though the build failed")
	}
	// Every blob the cache holds is whole: named by its own digest.
	blobs := filepath.Join(cacheFS, "cache", "oci", "blobs", "sha256")
	des, _ := os.ReadDir(blobs)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(blobs, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != de.Name() {
			t.Errorf("the full cache kept a partial or misnamed blob %s (%d bytes)", de.Name(), len(b))
		}
	}
	if err := unix.Mount("", cacheFS, "", unix.MS_REMOUNT, "size=16m"); err != nil {
		t.Fatal(err)
	}
	if err := build(context.Background(), []string{yml}, out, buildOptions{}); err != nil {
		t.Fatalf("build once the cache has room: %v", err)
	}
	if names, _ := cpioListing(t, out.Initrd()); !contains(names, "etc/noise") {
		t.Errorf("etc/noise missing from the initrd")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
