package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/keel-os/keel/pkg/initrd"
	"github.com/keel-os/keel/pkg/kubevirt"
	"github.com/keel-os/keel/pkg/oci"
)

// The push formats: the layouts of KubeVirt's two ways to boot from an
// image.
const (
	pushContainerDisk = "containerdisk"
	pushKernelBoot    = "kernelboot"
)

// containerDiskSuffixes are the disk outputs of keel build that a
// containerDisk takes, NAME plus a suffix, in the order they are
// preferred: qcow2 is smaller to pull than raw, and UEFI before BIOS.
// They are pkg/disk's names for qcow2-efi, raw-efi, qcow2-bios, raw-bios.
var containerDiskSuffixes = []string{"-efi.qcow2", "-efi.img", "-bios.qcow2", "-bios.img"}

func newPushCmd() *cobra.Command {
	var format, dir, arch string
	cmd := &cobra.Command{
		Use:   "push --format containerdisk|kernelboot [flags] REF NAME|FILE",
		Short: "push build outputs to a registry as a KubeVirt containerDisk or kernelBoot image",
		Long: `Packs outputs of keel build as a container image and pushes it to the registry
reference REF, with the credentials, TLS and timeouts keel uses to pull (a registry on
a loopback address is spoken to over plain HTTP). Prints REF by digest.

--format containerdisk: KubeVirt's containerDisk, the disk image under /disk/ (as
disk.qcow2 or disk.img, by its content), mode 0440, owned 107:107 (KubeVirt's qemu
user). FILE is a qcow2 or raw disk image; a NAME is looked for in DIR as
NAME-efi.qcow2, NAME-efi.img, NAME-bios.qcow2, NAME-bios.img, in that order (keel
build --format qcow2-efi, raw-efi, qcow2-bios, raw-bios).

--format kernelboot: the kernel and initrd for KubeVirt's kernelBoot.container, at
/boot/vmlinuz and /boot/initrd.img (its kernelPath and initrdPath), mode 0444, owned
107:107, from NAME-kernel and NAME-initrd.img in DIR. Prints the three fields to set,
kernelArgs from NAME-cmdline.

The image is reproducible: every time stamp is $SOURCE_DATE_EPOCH (or 0), so the same
files give the same digest. See docs/deploy.md for the manifests that boot them.`,
		Example: `  keel build --format qcow2-efi --dir out sys.yml
  keel push --format containerdisk --dir out registry.example.com/vm/sys:1 sys
  keel push --format kernelboot --dir out registry.example.com/vm/sys-kernel:1 sys`,
		Args: wantArgs(2, 2, "REF and a build's NAME (or, for containerdisk, a disk FILE)"),
	}
	flags := cmd.Flags()
	flags.StringVar(&format, "format", "", "image layout (`FORMAT`): containerdisk or kernelboot (required)")
	flags.StringVar(&dir, "dir", ".", "`DIR` holding the build's outputs")
	flags.StringVar(&arch, "arch", "amd64", "architecture (`ARCH`) the image is for: amd64 or arm64")
	completeFlag(cmd, "format", pushContainerDisk, pushKernelBoot)
	completeFlag(cmd, "arch", "amd64", "arm64")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		platform, err := parseArch(cmd, arch)
		if err != nil {
			return err
		}
		if format != pushContainerDisk && format != pushKernelBoot {
			return usageErrorf(cmd, "--format %q: want %s or %s", format, pushContainerDisk, pushKernelBoot)
		}
		mtime, err := initrd.Mtime()
		if err != nil {
			return err
		}
		ref, target := args[0], args[1]
		img, notes, err := pushImage(format, dir, target, kubevirt.Options{Platform: platform, Mtime: mtime})
		if err != nil {
			return err
		}
		// What goes in is said first: a large disk takes a while to send.
		w := cmd.OutOrStdout()
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		pushed, err := (&oci.Resolver{}).PushImage(ctx, img, ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "pushed %s\n", pushed)
		return nil
	}
	return cmd
}

// pushImage makes the image of format from the outputs target names, and
// the lines that say what went in.
func pushImage(format, dir, target string, o kubevirt.Options) (v1.Image, []string, error) {
	if format == pushKernelBoot {
		out := initrd.Outputs{Dir: dir, Name: target}
		img, err := kubevirt.KernelBoot(out.Kernel(), out.Initrd(), o)
		if err != nil {
			return nil, nil, fmt.Errorf("kernelboot of %s: %w (keel build writes them)", target, err)
		}
		notes := []string{
			"kernelPath: " + kubevirt.KernelPath,
			"initrdPath: " + kubevirt.InitrdPath,
		}
		// The command line is not in the image: KubeVirt takes it from
		// the VM's kernelArgs.
		if b, err := os.ReadFile(out.Cmdline()); err == nil {
			notes = append(notes, "kernelArgs: "+strings.TrimSpace(string(b)))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		return img, notes, nil
	}
	disk, err := findDisk(dir, target)
	if err != nil {
		return nil, nil, err
	}
	img, f, err := kubevirt.ContainerDisk(disk, o)
	if err != nil {
		return nil, nil, err
	}
	return img, []string{fmt.Sprintf("containerdisk %s (%s)", disk, f)}, nil
}

// findDisk is the disk a containerDisk is made of: target itself when it
// is a file, else the first of NAME's disk outputs in dir.
func findDisk(dir, target string) (string, error) {
	if st, err := os.Stat(target); err == nil && !st.IsDir() {
		return target, nil
	}
	var tried []string
	for _, suffix := range containerDiskSuffixes {
		p := filepath.Join(dir, target+suffix)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("containerdisk: no disk image %s, nor %s (build one with keel build --format qcow2-efi)",
		target, strings.Join(tried, ", "))
}
