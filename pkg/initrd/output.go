package initrd

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/keel-os/keel/pkg/kmod"
	"github.com/keel-os/keel/pkg/kmod/kerneltar"
	"github.com/keel-os/keel/pkg/progress"
)

// gzipBlockSize is the unit of parallel compression; changing it changes
// the initrd's bytes.
const gzipBlockSize = 1 << 20

// Paths of the kernel image's files, LinuxKit's layout: the kernel itself
// and a tar of its modules (lib/modules/<version>/...).
const (
	KernelFile  = "kernel"
	ModulesFile = "kernel.tar"
)

// KernelFiles names the files to take from the kernel image: the YAML's
// kernel binary, tar and ucode.
type KernelFiles struct {
	// Binary is the kernel; "" means KernelFile.
	Binary string
	// Tar is the tar of modules; "" means ModulesFile, which may be
	// missing, "none" means no modules. A Tar given by name must exist.
	Tar string
	// UCode, when set, is an uncompressed cpio of early microcode,
	// placed in front of the initrd, where the kernel looks for it.
	UCode string
}

func (k KernelFiles) binary() string {
	if k.Binary == "" {
		return KernelFile
	}
	return strings.TrimPrefix(k.Binary, "/")
}

func (k KernelFiles) tar() (name string, required bool) {
	switch k.Tar {
	case "":
		return ModulesFile, false
	case "none":
		return "", false
	}
	return strings.TrimPrefix(k.Tar, "/"), true
}

// Format is one kind of output of a build.
type Format string

const (
	// FormatKernelInitrd writes NAME-kernel, NAME-initrd.img and
	// NAME-cmdline.
	FormatKernelInitrd Format = "kernel+initrd"
	// FormatTar writes NAME.tar: the initrd's filesystem, with the kernel
	// and command line in boot/.
	FormatTar Format = "tar"
	// FormatTarKernelInitrd writes NAME-initrd.tar holding kernel,
	// initrd.img and cmdline.
	FormatTarKernelInitrd Format = "tar-kernel-initrd"
	// FormatKernelSquashfs writes NAME-kernel, NAME-cmdline, a small
	// NAME-squashfs-initrd.img and NAME-squashfs.img, a disk holding the
	// system as squashfs (see squashfsroot.go).
	FormatKernelSquashfs Format = "kernel+squashfs"
)

// Formats lists the accepted values of --format.
var Formats = []Format{FormatKernelInitrd, FormatTar, FormatTarKernelInitrd, FormatKernelSquashfs}

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown output format %q: want one of %s", s, strings.Join(names, ", "))
}

// Outputs names the files of one build in Dir, after Name.
type Outputs struct {
	Dir  string
	Name string
	// Formats to write; none means kernel+initrd.
	Formats []Format
}

func (o Outputs) Kernel() string  { return filepath.Join(o.Dir, o.Name+"-kernel") }
func (o Outputs) Initrd() string  { return filepath.Join(o.Dir, o.Name+"-initrd.img") }
func (o Outputs) Cmdline() string { return filepath.Join(o.Dir, o.Name+"-cmdline") }

// Tar is the file of the tar format.
func (o Outputs) Tar() string { return filepath.Join(o.Dir, o.Name+".tar") }

// KernelInitrdTar is the file of the tar-kernel-initrd format.
func (o Outputs) KernelInitrdTar() string { return filepath.Join(o.Dir, o.Name+"-initrd.tar") }

// SquashfsInitrd and SquashfsDisk are the small initrd and the disk of the
// kernel+squashfs format.
func (o Outputs) SquashfsInitrd() string { return filepath.Join(o.Dir, o.Name+"-squashfs-initrd.img") }
func (o Outputs) SquashfsDisk() string   { return filepath.Join(o.Dir, o.Name+"-squashfs.img") }

// formats are the formats asked for, each once, in the order given.
func (o Outputs) formats() []Format {
	if len(o.Formats) == 0 {
		return []Format{FormatKernelInitrd}
	}
	var out []Format
	seen := map[Format]bool{}
	for _, f := range o.Formats {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// Files lists the files the outputs' formats write.
func (o Outputs) Files() []string {
	var out []string
	for _, f := range o.formats() {
		switch f {
		case FormatKernelInitrd:
			out = append(out, o.Kernel(), o.Initrd(), o.Cmdline())
		case FormatTar:
			out = append(out, o.Tar())
		case FormatTarKernelInitrd:
			out = append(out, o.KernelInitrdTar())
		case FormatKernelSquashfs:
			out = append(out, o.Kernel(), o.SquashfsInitrd(), o.SquashfsDisk(), o.Cmdline())
		}
	}
	return dedup(out)
}

// dedup keeps the first of each string.
func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// needs reports whether any of the formats asked for is one of fs.
func (o Outputs) needs(fs ...Format) bool {
	for _, f := range o.formats() {
		if slices.Contains(fs, f) {
			return true
		}
	}
	return false
}

// Build is everything the outputs are made from.
type Build struct {
	Kernel      Image
	KernelFiles KernelFiles
	Cmdline     string
	// Contents of the initrd; the kernel's modules and their index are
	// added to it.
	Contents Contents
	// Mtime of every initrd entry, in seconds since the epoch.
	Mtime int64
	// Compression of the initrd; "" means gzip.
	Compression Compression
	// SegmentCache is the directory that caches compressed segments by
	// what they are made of ("" for no cache).
	SegmentCache string
	// Stats, when not nil, receives what was done with the segments.
	Stats *SegmentStats
	// Progress, when not nil, shows each output file as it is written.
	Progress *progress.Display
}

// Write writes the outputs of every format, each atomically: a reader
// never sees a half-written file, and a failed build leaves the previous
// outputs in place and nothing else behind.
func Write(o Outputs, b Build) error {
	for _, f := range o.formats() {
		if _, err := ParseFormat(string(f)); err != nil {
			return err
		}
	}
	comp := b.Compression
	if comp == "" {
		comp = Gzip
	}
	if _, err := ParseCompression(string(comp)); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	// Everything is made in a temporary directory next to the outputs,
	// then renamed into place.
	tmp, err := os.MkdirTemp(o.Dir, ".keel-build-*")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	kernel := filepath.Join(tmp, "kernel")
	modules := filepath.Join(tmp, "kernel.tar")
	ucode := filepath.Join(tmp, "ucode.cpio")
	has, err := splitKernel(b.Kernel, b.KernelFiles, kernel, modules, ucode)
	if err != nil {
		return err
	}
	c := b.Contents
	if has.modules {
		kid := imageID(b.Kernel)
		if kid != "" {
			kid += " " + has.tarName
		}
		c.Modules = &Layer{
			Name: b.Kernel.Ref + " " + has.tarName,
			Open: func() (io.ReadCloser, error) { return os.Open(modules) },
			ID:   kid,
		}
		if c.ModuleFiles, err = moduleFiles(modules); err != nil {
			return fmt.Errorf("kernel image %s: %w", b.Kernel.Ref, err)
		}
	}

	// The initrd of the whole system, for the formats that hold it.
	initrd := filepath.Join(tmp, "initrd.img")
	if o.needs(FormatKernelInitrd, FormatTarKernelInitrd) {
		task := b.Progress.Start("initrd " + filepath.Base(o.Initrd()))
		err = writeInitrd(initrd, c, b, comp, has.ucode, ucode, tmp, task)
		if err != nil {
			task.Abandon()
			return err
		}
	}
	cmdline := filepath.Join(tmp, "cmdline")
	if err := os.WriteFile(cmdline, []byte(b.Cmdline+"\n"), 0o644); err != nil {
		return fmt.Errorf("write cmdline: %w", err)
	}

	// Every output is complete in tmp before any is renamed into place.
	type move struct{ from, to string }
	var moves []move
	for _, f := range o.formats() {
		switch f {
		case FormatKernelInitrd:
			moves = append(moves, move{kernel, o.Kernel()}, move{initrd, o.Initrd()}, move{cmdline, o.Cmdline()})
		case FormatTarKernelInitrd:
			p := filepath.Join(tmp, "kernel-initrd.tar")
			task := b.Progress.Start("tar " + filepath.Base(o.KernelInitrdTar()))
			if err := writeKernelInitrdTar(p, task, b.Mtime, kernel, initrd, cmdline); err != nil {
				return fmt.Errorf("write %s: %w", o.KernelInitrdTar(), err)
			}
			moves = append(moves, move{p, o.KernelInitrdTar()})
		case FormatTar:
			p := filepath.Join(tmp, "image.tar")
			task := b.Progress.Start("tar " + filepath.Base(o.Tar()))
			if err := writeImageTar(p, task, c, b.Mtime, kernel, cmdline, has.ucode, ucode); err != nil {
				return fmt.Errorf("write %s: %w", o.Tar(), err)
			}
			moves = append(moves, move{p, o.Tar()})
		case FormatKernelSquashfs:
			disk, small := filepath.Join(tmp, "squashfs.img"), filepath.Join(tmp, "squashfs-initrd.img")
			task := b.Progress.Start("squashfs " + filepath.Base(o.SquashfsDisk()))
			part, err := WriteSquashfsDisk(disk, tmp, c, b.Mtime)
			if err != nil {
				task.Abandon()
				return fmt.Errorf("write %s: %w", o.SquashfsDisk(), err)
			}
			if st, err := os.Stat(disk); err == nil {
				task.Add(st.Size())
			}
			task.End("partition " + part)
			if err := writeSmallInitrd(small, tmp, c, modules, part, b.Mtime, comp, has.ucode, ucode); err != nil {
				return fmt.Errorf("write %s: %w", o.SquashfsInitrd(), err)
			}
			moves = append(moves, move{kernel, o.Kernel()}, move{small, o.SquashfsInitrd()}, move{disk, o.SquashfsDisk()}, move{cmdline, o.Cmdline()})
		}
	}
	moved := map[string]bool{}
	for _, m := range moves {
		if moved[m.to] {
			continue // kernel and cmdline, shared by two formats
		}
		moved[m.to] = true
		if err := os.Chmod(m.from, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", m.to, err)
		}
		if err := os.Rename(m.from, m.to); err != nil {
			return fmt.Errorf("write %s: %w", m.to, err)
		}
	}
	return nil
}

// writeInitrd writes the initrd at p: the microcode cpio as is, if any,
// then each compressed segment. task, when not nil, follows the segments
// being made; it is ended when the initrd is complete.
func writeInitrd(p string, c Contents, b Build, comp Compression, hasUcode bool, ucode, tmp string, task *progress.Task) error {
	root, segs, err := c.splitSegments()
	if err != nil {
		return err
	}
	st := &segmentStore{dir: b.SegmentCache, tmp: tmp, compression: comp, mtime: b.Mtime, task: task}
	// The root is written first into the initrd but made last: it lists
	// the memory every other segment takes (bundle.SealsExpected).
	n := len(segs) + 1
	files := make([]string, n)
	sizes := make([]int64, len(segs))
	for i, s := range segs {
		task.Note(fmt.Sprintf("segment %d/%d", i+2, n))
		if files[i+1], sizes[i], err = st.file(s); err != nil {
			return fmt.Errorf("write initrd: %w", err)
		}
	}
	task.Note(fmt.Sprintf("segment 1/%d", n))
	if files[0], _, err = st.file(root(sizes)); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	if b.Stats != nil {
		*b.Stats = st.stats
	}
	if b.SegmentCache != "" {
		pruneSegments(b.SegmentCache, time.Now())
	}
	out, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	defer out.Close()
	if hasUcode {
		if err := writeMicrocode(out, ucode); err != nil {
			return fmt.Errorf("write initrd: %w", err)
		}
	}
	for _, f := range files {
		if _, err := appendFile(out, f); err != nil {
			return fmt.Errorf("write initrd: %w", err)
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	task.End(fmt.Sprintf("%s, %d segments, %d reused", comp, n, st.stats.Reused))
	return nil
}

// writeMicrocode puts the microcode cpio at p in front of an initrd, as
// is: the kernel looks for it there, uncompressed.
func writeMicrocode(w io.Writer, p string) error {
	n, err := appendFile(w, p)
	if err != nil {
		return fmt.Errorf("microcode: %w", err)
	}
	// The kernel looks for the next archive on a 4-byte boundary and
	// skips zeros.
	_, err = w.Write(make([]byte, (4-n%4)%4))
	return err
}

func appendFile(w io.Writer, p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}

// kernelParts says what splitKernel found.
type kernelParts struct {
	modules, ucode bool
	tarName        string
}

// splitKernel copies the kernel image's kernel binary to kernel, its tar
// of modules, if any, to modules, and its microcode cpio, if asked, to
// ucode.
func splitKernel(img Image, names KernelFiles, kernel, modules, ucode string) (kernelParts, error) {
	binName := names.binary()
	tarName, tarRequired := names.tar()
	ucodeName := strings.TrimPrefix(names.UCode, "/")
	parts := kernelParts{tarName: tarName}
	// mutate.Extract flattens the layers, whiteouts applied; only a few
	// files are wanted, so its order does not matter here.
	rc := mutate.Extract(img.Image)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hasKernel bool
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return parts, fmt.Errorf("read kernel image %s: %w", img.Ref, err)
		}
		name, err := cleanName(h.Name)
		if err != nil || h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		var to string
		switch {
		case name == binName:
			hasKernel, to = true, kernel
		case tarName != "" && name == tarName:
			parts.modules, to = true, modules
		case ucodeName != "" && name == ucodeName:
			parts.ucode, to = true, ucode
		default:
			continue
		}
		if err := copyToFile(to, tr); err != nil {
			return parts, fmt.Errorf("copy /%s of %s: %w", name, img.Ref, err)
		}
	}
	switch {
	case !hasKernel:
		return parts, fmt.Errorf("kernel image %s has no /%s", img.Ref, binName)
	case tarRequired && !parts.modules:
		return parts, fmt.Errorf("kernel image %s has no /%s", img.Ref, tarName)
	case ucodeName != "" && !parts.ucode:
		return parts, fmt.Errorf("kernel image %s has no /%s", img.Ref, ucodeName)
	}
	return parts, nil
}

func copyToFile(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeKernelInitrdTar writes a tar of kernel, initrd.img and cmdline.
func writeKernelInitrdTar(p string, task *progress.Task, mtime int64, kernel, initrd, cmdline string) error {
	return writeTarFile(p, task, func(tw *tar.Writer) error {
		for _, e := range []struct{ name, file string }{{"kernel", kernel}, {"initrd.img", initrd}, {"cmdline", cmdline}} {
			if err := tarAddFile(tw, e.name, e.file, mtime); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeImageTar writes the whole image as one tar: boot/kernel,
// boot/cmdline (and boot/ucode.cpio), then the initrd's filesystem.
func writeImageTar(p string, task *progress.Task, c Contents, mtime int64, kernel, cmdline string, hasUcode bool, ucode string) error {
	return writeTarFile(p, task, func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Name: "boot/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: unixTime(mtime), Format: tar.FormatPAX}); err != nil {
			return err
		}
		files := []struct{ name, file string }{{"boot/kernel", kernel}, {"boot/cmdline", cmdline}}
		if hasUcode {
			files = append(files, struct{ name, file string }{"boot/ucode.cpio", ucode})
		}
		for _, e := range files {
			if err := tarAddFile(tw, e.name, e.file, mtime); err != nil {
				return err
			}
		}
		// The segments' entries go straight into the tar, streamed from
		// the layers as they are into the initrd.
		return writeTree(newTarSink(tw, "boot"), c, mtime)
	})
}

// writeTree writes the whole tree of the contents, every segment one
// after the other, into sink.
func writeTree(sink Sink, c Contents, mtime int64) error {
	segs, err := c.segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if _, err := s.writeTo(sink, mtime); err != nil {
			return err
		}
	}
	return nil
}

// writeTarFile writes the tar that fill makes at p; task, when not nil,
// counts its bytes and is ended when the file is complete (abandoned if
// not).
func writeTarFile(p string, task *progress.Task, fill func(*tar.Writer) error) error {
	defer task.Abandon()
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(countingWriter{f, task.Add})
	if err := fill(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	task.End("")
	return nil
}

func tarAddFile(tw *tar.Writer, name, file string, mtime int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(), ModTime: unixTime(mtime), Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// moduleFiles reads the modules of the kernel.tar at p into the module
// index and depmod's files (kerneltar.GuestFiles).
func moduleFiles(p string) ([]kmod.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return kerneltar.GuestFiles(f)
}

// Mtime is the time stamped on every initrd entry: $SOURCE_DATE_EPOCH
// when set (the reproducible-builds convention), else the epoch itself.
func Mtime() (int64, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	t, err := strconv.ParseInt(s, 10, 64)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return t, nil
}
