package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
)

// Disk formats QEMU is given.
const (
	Raw   = "raw"
	QCOW2 = "qcow2"
)

// Disk is a disk image attached to the guest as a virtio block device.
type Disk struct {
	// Path of the image; Create makes it when it does not exist.
	Path string
	// Size in bytes of an image Create makes; 0 means the image must exist.
	Size int64
	// Format is Raw or QCOW2; "" is Raw, or QCOW2 for a .qcow2 path.
	Format string
}

// ParseDisk reads a --disk value, as `linuxkit run` takes it: a path, or
// comma-separated file=PATH, size=SIZE (1G, 512M; binary units) and
// format=raw|qcow2. With no file, Path is "" for the caller to choose.
func ParseDisk(s string) (Disk, error) {
	if !strings.Contains(s, "=") {
		if s == "" {
			return Disk{}, errors.New("empty disk")
		}
		return Disk{Path: s}, nil
	}
	var d Disk
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return Disk{}, fmt.Errorf("disk %q: %q is not key=value (file=PATH,size=1G,format=qcow2|raw)", s, kv)
		}
		switch k {
		case "file":
			d.Path = v
		case "size":
			n, err := units.RAMInBytes(v)
			if err != nil || n <= 0 {
				return Disk{}, fmt.Errorf("disk %q: size %q: want a positive size such as 1G or 512M", s, v)
			}
			d.Size = n
		case "format":
			if v != Raw && v != QCOW2 {
				return Disk{}, fmt.Errorf("disk %q: format %q: want raw or qcow2", s, v)
			}
			d.Format = v
		default:
			return Disk{}, fmt.Errorf("disk %q: unknown key %q (want file, size, format)", s, k)
		}
	}
	return d, nil
}

// format is the disk's format, from its path when not given.
func (d Disk) format() string {
	switch {
	case d.Format != "":
		return d.Format
	case filepath.Ext(d.Path) == ".qcow2":
		return QCOW2
	}
	return Raw
}

// drive is the disk's -drive option.
func (d Disk) drive() string {
	// QEMU splits -drive on commas; a comma in a path is written twice.
	return fmt.Sprintf("file=%s,if=virtio,format=%s,cache=writeback", strings.ReplaceAll(d.Path, ",", ",,"), d.format())
}

// Exists says whether the disk's image is there.
func (d Disk) Exists() bool {
	_, err := os.Stat(d.Path)
	return err == nil
}

// Create makes the disk's image when it does not exist: a sparse file for
// raw, qemu-img for qcow2. An existing image is left as it is.
func (d Disk) Create(ctx context.Context) error {
	if d.Exists() {
		return nil
	}
	if d.Size == 0 {
		return fmt.Errorf("disk %s does not exist; give its size to create it (size=1G)", d.Path)
	}
	if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
		return fmt.Errorf("create disk %s: %w", d.Path, err)
	}
	if d.format() == QCOW2 {
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", QCOW2, d.Path, fmt.Sprint(d.Size)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create disk %s: qemu-img: %w: %s", d.Path, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create disk %s: %w", d.Path, err)
	}
	err = f.Truncate(d.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(d.Path)
		return fmt.Errorf("create disk %s: %w", d.Path, err)
	}
	return nil
}
