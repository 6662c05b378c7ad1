package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// errNoPackage is returned when apt knows no installable version of a
// package.
var errNoPackage = errors.New("not in the apt archive")

// debPackage is a Debian package file in the download cache.
type debPackage struct {
	Name    string
	Version string // Debian version, with epoch: 1:1.35.0-4+deb12u1+b1
	Path    string
}

// UpstreamVersion is the version without epoch and Debian revision:
// 1:1.35.0-4+deb12u1 -> 1.35.0.
func (p debPackage) UpstreamVersion() string {
	v := p.Version
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		v = v[:i]
	}
	return v
}

// fetchDeb returns the package apt would install for name, downloading it
// into dir unless a previous run did. The file is named after the archive's
// pool file, so a new version in the archive is a new file, and a finished
// download is renamed into place so a killed run leaves no partial .deb.
func fetchDeb(ctx context.Context, dir, name string) (pkg debPackage, cached bool, err error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", name).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return pkg, false, fmt.Errorf("look up apt package %s: %w", name, err)
	}
	// apt-cache fails for an unknown package and prints nothing for a
	// virtual one.
	fields := parseControl(out)
	if err != nil || fields["Filename"] == "" {
		return pkg, false, fmt.Errorf("apt package %s: %w", name, errNoPackage)
	}
	pkg = debPackage{Name: name, Version: fields["Version"], Path: filepath.Join(dir, path.Base(fields["Filename"]))}
	if _, err := os.Stat(pkg.Path); err == nil {
		return pkg, true, nil
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return pkg, false, fmt.Errorf("download %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(dir, ".apt-"+name+"-")
	if err != nil {
		return pkg, false, fmt.Errorf("download %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	// As root, apt drops privileges to _apt for downloads, which cannot
	// write into a directory under root's home; stay root instead.
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", name+"="+pkg.Version)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return pkg, false, fmt.Errorf("apt-get download %s=%s: %w\n%s", name, pkg.Version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return pkg, false, fmt.Errorf("apt-get download %s: expected one .deb, got %d", name, len(debs))
	}
	if err := os.Rename(debs[0], pkg.Path); err != nil {
		return pkg, false, fmt.Errorf("download %s: %w", name, err)
	}
	return pkg, false, nil
}

// parseControl reads the first stanza of Debian control data ("Key: value"
// lines); continuation lines are not needed here and are skipped.
func parseControl(b []byte) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// walkDebData calls fn for each entry of a .deb's data.tar, in archive
// order. Names are cleaned to "usr/bin/x" form ("" for the root).
func walkDebData(debPath string, fn func(hdr *tar.Header, r io.Reader) error) error {
	f, err := os.Open(debPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := walkDebDataFrom(f, fn); err != nil {
		return fmt.Errorf("read %s: %w", debPath, err)
	}
	return nil
}

func walkDebDataFrom(r io.Reader, fn func(hdr *tar.Header, r io.Reader) error) error {
	ar, err := newArReader(r)
	if err != nil {
		return err
	}
	for {
		name, member, err := ar.next()
		if err == io.EOF {
			return errors.New("no data.tar member: not a Debian package")
		}
		if err != nil {
			return err
		}
		if !strings.HasPrefix(name, "data.tar") {
			continue
		}
		data, err := decompress(strings.TrimPrefix(name, "data.tar"), member)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer data.Close()
		tr := tar.NewReader(data)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			hdr.Name = strings.Trim(path.Clean("/"+hdr.Name), "/")
			if err := fn(hdr, tr); err != nil {
				return err
			}
		}
	}
}

// decompress undoes the compression a .deb member's name suffix says.
func decompress(ext string, r io.Reader) (io.ReadCloser, error) {
	switch ext {
	case "":
		return io.NopCloser(r), nil
	case ".gz":
		return gzip.NewReader(r)
	case ".xz":
		zr, err := xz.NewReader(bufio.NewReaderSize(r, 1<<20))
		return io.NopCloser(zr), err
	case ".zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unsupported compression %q", ext)
}

// arReader reads the "ar" archives .deb files are: a magic line, then
// members each with a 60-byte text header and data padded to an even size.
// Debian's members have short names, so no GNU or BSD long-name tables.
type arReader struct {
	r       *bufio.Reader
	pending int64 // unread bytes of the current member, padding included
}

const arMagic = "!<arch>\n"

func newArReader(r io.Reader) (*arReader, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return nil, errors.New("not an ar archive: not a Debian package")
	}
	return &arReader{r: br}, nil
}

// next skips what is left of the current member and returns the next one.
func (a *arReader) next() (string, io.Reader, error) {
	if _, err := a.r.Discard(int(a.pending)); err != nil {
		return "", nil, fmt.Errorf("ar archive truncated: %w", err)
	}
	var hdr [60]byte
	if _, err := io.ReadFull(a.r, hdr[:]); err != nil {
		if err == io.EOF {
			return "", nil, io.EOF
		}
		return "", nil, fmt.Errorf("read ar header: %w", err)
	}
	if string(hdr[58:60]) != "`\n" {
		return "", nil, errors.New("bad ar member header")
	}
	name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
	size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
	if err != nil || size < 0 {
		return "", nil, fmt.Errorf("ar member %s: bad size %q", name, hdr[48:58])
	}
	a.pending = size + size%2
	return name, &io.LimitedReader{R: &arMember{a}, N: size}, nil
}

// arMember reads the current member, keeping count of what is left.
type arMember struct{ a *arReader }

func (m *arMember) Read(p []byte) (int, error) {
	n, err := m.a.r.Read(p)
	m.a.pending -= int64(n)
	return n, err
}

// extractDeb writes the regular files and directories of a .deb's data.tar
// that keep accepts under dst, with their modes. Anything else (symlinks,
// device nodes) is skipped: keel takes only plain files from packages.
func extractDeb(debPath, dst string, keep func(name string) bool) error {
	return walkDebData(debPath, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name == "" || !keep(hdr.Name) {
			return nil
		}
		// Names are cleaned and rooted by walkDebData, so they cannot
		// climb out of dst.
		p := filepath.Join(dst, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(hdr.Mode).Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, r); err != nil {
				f.Close()
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			return f.Close()
		}
		return nil
	})
}
