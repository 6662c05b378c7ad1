package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keel-os/keel/pkg/initrd"
)

// bootTarget is what keel run boots: the kernel+initrd outputs of a build,
// or its tar-kernel-initrd output.
type bootTarget struct {
	// name is the outputs' path without their suffixes (out/demo).
	name string
	// tar is the tar-kernel-initrd file; "" for kernel+initrd.
	tar string
}

// The suffixes of a build's outputs, after NAME.
var targetSuffixes = []string{"-kernel", "-initrd.img", "-cmdline", ".lock.json", squashfsInitrdSuffix, squashfsDiskSuffix}

// tarSuffix is the tar-kernel-initrd output's (initrd.Outputs.KernelInitrdTar).
const tarSuffix = "-initrd.tar"

// targetName is NAME for any of NAME's output files, or arg itself.
func targetName(arg string) string {
	for _, s := range append(targetSuffixes, tarSuffix) {
		if n, ok := strings.CutSuffix(arg, s); ok && n != "" && isFile(arg) {
			return n
		}
	}
	return arg
}

// findTarget reads keel run's argument: NAME, any of NAME's files
// (NAME-kernel, NAME-initrd.img, NAME-cmdline, NAME.lock.json), or a
// tar-kernel-initrd output (NAME-initrd.tar, or any tar that holds kernel,
// initrd.img and cmdline).
func findTarget(arg string) (bootTarget, error) {
	name := targetName(arg)
	if name != arg && strings.HasSuffix(arg, tarSuffix) {
		return bootTarget{name: name, tar: arg}, nil
	}
	out := initrd.Outputs{Dir: filepath.Dir(name), Name: filepath.Base(name)}
	switch {
	case isFile(out.Kernel()):
		return bootTarget{name: name}, nil
	case isFile(out.KernelInitrdTar()):
		return bootTarget{name: name, tar: out.KernelInitrdTar()}, nil
	case strings.HasSuffix(arg, ".tar") && isFile(arg):
		return bootTarget{name: strings.TrimSuffix(arg, ".tar"), tar: arg}, nil
	}
	return bootTarget{}, fmt.Errorf("%s: no %s or %s: give NAME as keel build wrote it (keel build --dir out x.yml writes out/x-kernel, ...)",
		arg, out.Kernel(), out.KernelInitrdTar())
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// readKernelInitrdTar reads a tar-kernel-initrd output: its cmdline, and
// its kernel and initrd.img, which are written into dir as kernel and
// initrd.img unless dir is "" (keel run --dry-run writes nothing).
func readKernelInitrdTar(file, dir string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var cmdline string
	var hasKernel, hasInitrd bool
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		switch filepath.Clean(h.Name) {
		case "cmdline":
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return "", fmt.Errorf("%s: cmdline: %w", file, err)
			}
			cmdline = strings.TrimSpace(string(b))
		case "kernel":
			hasKernel = true
			if err := extract(tr, dir, "kernel"); err != nil {
				return "", fmt.Errorf("%s: %w", file, err)
			}
		case "initrd.img":
			hasInitrd = true
			if err := extract(tr, dir, "initrd.img"); err != nil {
				return "", fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	if !hasKernel || !hasInitrd {
		return "", fmt.Errorf("%s: not a tar-kernel-initrd output: want kernel, initrd.img and cmdline in it", file)
	}
	return cmdline, nil
}

// extract writes r to dir/name; with dir "" it writes nothing.
func extract(r io.Reader, dir, name string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
