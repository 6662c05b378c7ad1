package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keel-os/keel/pkg/bootimage"
	"github.com/keel-os/keel/pkg/disk"
	"github.com/keel-os/keel/pkg/initrd"
	"github.com/spf13/pflag"
)

// diskOptions are keel build's flags for the disk formats.
type diskOptions struct {
	formats []disk.Format
	// extra is -size: room to grow added to each disk.
	extra int64
	// bootImage is where the boot loaders come from.
	bootImage string
}

func diskFormatNames() string {
	s := make([]string, len(disk.Formats))
	for i, f := range disk.Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func (d *diskOptions) addFlags(fs *pflag.FlagSet) {
	d.bootImage = bootimage.DefaultRef
	fs.Func("size", "room to grow added to each disk format's file system, e.g. 512M or 2G (default none)", func(s string) error {
		n, err := parseSize(s)
		d.extra = n
		return err
	})
	fs.StringVar(&d.bootImage, "boot-image", bootimage.DefaultRef, "image the disk formats take their boot loaders from (tools/mkimages makes it)")
}

// parseSize reads a byte count with an optional K, M or G (binary) suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(s)
	if n := len(num); n > 0 {
		switch strings.ToUpper(num[n-1:]) {
		case "K":
			mult, num = 1<<10, num[:n-1]
		case "M":
			mult, num = 1<<20, num[:n-1]
		case "G":
			mult, num = 1<<30, num[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("-size %q: want a number of bytes, with K, M or G", s)
	}
	return v * mult, nil
}

// write writes the initrd formats, then the disk formats from the
// kernel, initrd and cmdline files. When kernel+initrd was not asked for,
// those files are made in a temporary directory and left out of the
// outputs. boot resolves the boot loaders' image, only when a format
// needs it. It returns the disk files written.
func (o *outputOptions) write(out initrd.Outputs, b initrd.Build, boot func(ref string) (initrd.Image, error)) ([]string, error) {
	if o == nil || len(o.disk.formats) == 0 {
		return nil, initrd.Write(out, b)
	}
	var loaders bootimage.Loaders
	if disk.NeedsLoaders(o.disk.formats) {
		img, err := boot(o.disk.bootImage)
		if err != nil {
			return nil, fmt.Errorf("boot loaders for %s: %w (tools/mkimages makes %s: make images)", o.disk.formats[0], err, bootimage.DefaultRef)
		}
		if loaders, err = bootimage.Read(o.disk.bootImage, img.Image); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(out.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	tmp, err := os.MkdirTemp(out.Dir, ".keel-kernel-initrd-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	// One initrd build writes what was asked and kernel+initrd, in tmp;
	// what was asked is then moved into place.
	staged := out
	staged.Dir = tmp
	staged.Formats = append(append([]initrd.Format(nil), out.Formats...), initrd.FormatKernelInitrd)
	if err := initrd.Write(staged, b); err != nil {
		return nil, err
	}
	files, err := disk.Write(out.Dir, out.Name, o.disk.formats, disk.Inputs{
		Kernel: staged.Kernel(), Initrd: staged.Initrd(), Cmdline: staged.Cmdline(),
		Loaders: loaders, Mtime: b.Mtime, Extra: o.disk.extra, Name: out.Name,
	})
	if err != nil {
		return nil, err
	}
	if len(out.Formats) > 0 {
		for _, p := range out.Files() {
			if err := os.Rename(filepath.Join(tmp, filepath.Base(p)), p); err != nil {
				return nil, fmt.Errorf("write %s: %w", p, err)
			}
		}
	}
	return files, nil
}
