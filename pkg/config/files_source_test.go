package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sourceConfig parses a configuration whose one file entry (at line 5) has
// source src; its source value starts at column 13.
func sourceConfig(t *testing.T, src string) *Config {
	t.Helper()
	yml := "kernel:\n  image: k\ninit: [i]\nfiles:\n  - source: " + src + "\n    path: etc/x\n"
	cfg, err := Parse("t.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A source must be a regular file of at most MaxFileSource bytes: a
// device would be read forever (/dev/zero), a FIFO blocks the build until
// someone writes to it, and an oversized file ends up whole in memory and
// in the initrd. Each is refused, by Validate and by ResolveFiles, with
// the position and field of the source.
func TestFileSourceMustBeBoundedRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("make FIFO %s: %v", fifo, err)
	}
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: one byte over the limit, without writing it.
	if err := f.Truncate(MaxFileSource + 1); err != nil {
		t.Fatalf("make sparse file %s: %v", big, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"device", "/dev/zero", "t.yml:5:13: files[0].source: /dev/zero is not a regular file (a character device)"},
		{"FIFO", fifo, "t.yml:5:13: files[0].source: " + fifo + " is not a regular file (a named pipe)"},
		{"directory", dir, "t.yml:5:13: files[0].source: " + dir + " is not a regular file (a directory)"},
		{"oversized", big, "t.yml:5:13: files[0].source: " + big + " is larger than 64 MiB, the limit of a files: source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sourceConfig(t, tc.src)
			err := cfg.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate:\n%v\nwant:\n%s", err, tc.want)
			}
			// ResolveFiles checks again (and as it reads): the file may
			// change between the two.
			_, err = cfg.ResolveFiles()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("ResolveFiles:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// A source of exactly MaxFileSource bytes is read whole.
func TestFileSourceAtLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "limit")
	if err := os.WriteFile(p, make([]byte, MaxFileSource), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sourceConfig(t, p)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	files, err := cfg.ResolveFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || len(files[0].Contents) != MaxFileSource {
		t.Fatalf("read %d files, %d bytes", len(files), len(files[0].Contents))
	}
}
