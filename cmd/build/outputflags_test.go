package main

import (
	"io"
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/keel-os/keel/pkg/bootimage"
	"github.com/keel-os/keel/pkg/disk"
	"github.com/keel-os/keel/pkg/initrd"
)

func TestOutputFlags(t *testing.T) {
	parse := func(args ...string) (*outputOptions, error) {
		fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o := addOutputFlags(fs)
		return o, fs.Parse(args)
	}
	o, err := parse()
	if err != nil || o.formats != nil || o.compression != initrd.Gzip || o.noSegmentCache {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = parse("--format", "tar,kernel+initrd", "--format", "tar-kernel-initrd", "--compress", "lz4", "--no-segment-cache")
	want := []initrd.Format{initrd.FormatTar, initrd.FormatKernelInitrd, initrd.FormatTarKernelInitrd}
	if err != nil || !reflect.DeepEqual(o.formats, want) || o.compression != initrd.LZ4 || !o.noSegmentCache {
		t.Errorf("set: %+v, %v", o, err)
	}
	var out initrd.Outputs
	var b initrd.Build
	o.apply(&out, &b, t.TempDir())
	if !reflect.DeepEqual(out.Formats, want) || b.Compression != initrd.LZ4 || b.SegmentCache != "" {
		t.Errorf("apply: %+v %+v", out, b)
	}
	for _, bad := range [][]string{{"--format", "iso"}, {"--compress", "xz"}, {"--format", "tar,"}} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDiskFormatFlags(t *testing.T) {
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := addOutputFlags(fs)
	if err := fs.Parse([]string{"--format", "raw-efi,kernel+initrd", "--format", "uki", "--size", "10M"}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.formats, []initrd.Format{initrd.FormatKernelInitrd}) ||
		!reflect.DeepEqual(o.disk.formats, []disk.Format{disk.RawEFI, disk.UKI}) || o.disk.extra != 10<<20 ||
		o.disk.bootImage != bootimage.DefaultRef {
		t.Errorf("%+v", o)
	}
	for _, bad := range []string{"--size=10X", "--size=-1", "--format=raw-uefi"} {
		fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		addOutputFlags(fs)
		if err := fs.Parse([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
