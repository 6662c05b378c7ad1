package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With neither KEEL_CACHE, XDG_CACHE_HOME nor HOME there is no private
// place for the cache: keel says so rather than use a shared directory
// such as /tmp, where another user could plant the images it boots.
func TestCacheDirNeedsAPrivatePlace(t *testing.T) {
	t.Setenv("KEEL_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	dir, err := CacheDir()
	if err == nil {
		t.Fatalf("CacheDir = %q, want an error", dir)
	}
	if !strings.Contains(err.Error(), "set KEEL_CACHE or HOME") {
		t.Errorf("error does not say what to do: %v", err)
	}
	if d := DefaultCacheDir(); d != "" {
		t.Errorf("DefaultCacheDir = %q, want \"\"", d)
	}
	if _, err := OpenCache(DefaultCacheDir()); err == nil || !strings.Contains(err.Error(), "set KEEL_CACHE or HOME") {
		t.Errorf("OpenCache(\"\"): %v", err)
	}
}

func TestCacheDirFromEnvironment(t *testing.T) {
	t.Setenv("KEEL_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, err := CacheDir(); err != nil || d != "/x/cache/keel" {
		t.Errorf("XDG_CACHE_HOME: %q, %v", d, err)
	}
	t.Setenv("KEEL_CACHE", "/k")
	if d, err := CacheDir(); err != nil || d != "/k" {
		t.Errorf("KEEL_CACHE: %q, %v", d, err)
	}
}

// A new cache directory, and its missing parents, are made for the user
// only.
func TestOpenCacheMakesPrivateDir(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "home", ".cache")
	dir := filepath.Join(parent, "keel")
	if _, err := OpenCache(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{parent, dir} {
		st, err := os.Lstat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a directory with mode 0700", d, st.Mode())
		}
	}
}

// A cache directory someone else could write to, or that is a symlink
// (which someone could point anywhere), is refused, and nothing is
// written in it.
func TestOpenCacheRefusesUnsafeDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string)
		want string
	}{
		{"world-writable", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777) }, "is writable by group or others (mode 0777)"},
		{"group-writable", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770) }, "is writable by group or others (mode 0770)"},
		{"symlink", func(t *testing.T, dir string) {
			target := dir + ".target"
			mkdirMode(t, target, 0o700)
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"file", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			tc.make(t, dir)
			_, err := OpenCache(dir)
			if err == nil {
				t.Fatalf("OpenCache accepted a %s cache directory", tc.name)
			}
			if !strings.Contains(err.Error(), "image cache "+dir) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to name %s and say %q", err, dir, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, "oci")); err == nil {
				t.Errorf("%s/oci was made in a refused directory", dir)
			}
		})
	}
}

// An existing cache made with the old 0755 mode is still the user's own
// and nobody else can write to it: it is accepted.
func TestOpenCacheAcceptsReadableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	mkdirMode(t, dir, 0o755)
	if _, err := OpenCache(dir); err != nil {
		t.Fatal(err)
	}
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	// Mkdir's mode goes through the umask.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}
