package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// crunConfigure are the flags of crun's configure: keel has no systemd
// and no checkpointing, yajl is built in (no libyajl to carry), nothing is
// loaded at run time, and the result is one program with no shared
// libcrun beside it. CFLAGS are autoconf's default less -g: the debug
// information, stripped anyway, names the build's temp directory, and
// the build ID that strip keeps is a hash of it, so crun would differ
// from one build to the next.
var crunConfigure = []string{
	"--disable-systemd", "--disable-criu", "--enable-embedded-yajl",
	"--disable-dl", "--disable-shared", "--enable-static",
	"CFLAGS=-O2",
}

// crunLdflags relink crun fully static. crun links through libtool, which
// takes -static to mean only "no shared libtool libraries" and still
// makes a dynamic program; -all-static is its word for a static one.
const crunLdflags = "-all-static"

// crunSource is the source package of crun in Debian's archive.
const crunSource = "crun"

// crunTarball is the name of Debian's upstream source tarball of crun
// version: the pool file, and the file in the downloads cache.
func crunTarball(version string) string { return crunSource + "_" + version + ".orig.tar.gz" }

// crunStamp says how a crun in the tools cache was built: from which
// tarball, with which configure flags and link flags. A change of any
// builds it again.
func crunStamp(sha string) string {
	return fmt.Sprintf("sha256=%s\nconfigure=%s\nldflags=%s\n", sha, strings.Join(crunConfigure, " "), crunLdflags)
}

// ensureCrun returns the tools cache directory holding crun version,
// static and stripped, as "crun", building it first when the cache has
// none built from the tarball with sha256 sum sha and the current flags.
// The tarball is Debian's (from the archive apt uses), kept in
// downloadsDir. Like goTool.ensure, the build happens in a temp directory
// renamed into place when complete.
func ensureCrun(ctx context.Context, toolsDir, downloadsDir, version, sha string) (dir string, built bool, err error) {
	stamp := crunStamp(sha)
	dir = filepath.Join(toolsDir, "crun-"+version)
	if crunComplete(dir, stamp) {
		return dir, false, nil
	}
	tarball := filepath.Join(downloadsDir, crunTarball(version))
	if err := fetchCrunSource(ctx, tarball, version, sha); err != nil {
		return "", false, err
	}

	if err := os.MkdirAll(toolsDir, 0o755); err != nil {
		return "", false, err
	}
	removeStale(toolsDir, ".crun-"+version+"-*")
	tmp, err := os.MkdirTemp(toolsDir, ".crun-"+version+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)

	if err := extractTarGz(tarball, filepath.Join(tmp, "src")); err != nil {
		return "", false, fmt.Errorf("crun %s: %w", version, err)
	}
	src := filepath.Join(tmp, "src", "crun-"+version)
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		return "", false, fmt.Errorf("crun %s: %s has no directory crun-%s/", version, tarball, version)
	}
	steps := [][]string{
		append([]string{"./configure"}, crunConfigure...),
		// Made first on their own: a tarball has no git to make
		// git-version.h from, and `make crun` alone does not make it.
		{"make", "git-version.h", ".version"},
		{"make", "-j" + strconv.Itoa(runtime.NumCPU())},
	}
	for _, args := range steps {
		if err := runIn(ctx, src, args...); err != nil {
			return "", false, fmt.Errorf("build crun %s: %w", version, err)
		}
	}
	// The default link makes a dynamic crun: link it again, static.
	prog := filepath.Join(src, "crun")
	if err := os.Remove(prog); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := runIn(ctx, src, "make", "crun", "LDFLAGS="+crunLdflags); err != nil {
		return "", false, fmt.Errorf("build crun %s: %w", version, err)
	}
	if err := runIn(ctx, src, "strip", "crun"); err != nil {
		return "", false, fmt.Errorf("build crun %s: %w", version, err)
	}
	if err := checkStaticELF(prog); err != nil {
		return "", false, fmt.Errorf("build crun %s: %w", version, err)
	}
	if err := checkCrunRuns(ctx, prog, version); err != nil {
		return "", false, fmt.Errorf("build crun %s: %w", version, err)
	}
	if err := os.Rename(prog, filepath.Join(tmp, "crun")); err != nil {
		return "", false, err
	}
	if err := os.RemoveAll(filepath.Join(tmp, "src")); err != nil {
		return "", false, err
	}
	if err := storeTool(tmp, dir, stamp); err != nil {
		return "", false, fmt.Errorf("store crun %s in the tools cache: %w", version, err)
	}
	return dir, true, nil
}

func crunComplete(dir, stamp string) bool {
	if st, err := os.Stat(filepath.Join(dir, "crun")); err != nil || !st.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, buildStampFile))
	return err == nil && string(b) == stamp
}

// fetchCrunSource makes sure tarball is crun's source with sha256 sum
// sha, downloading it from Debian's pool unless it already is.
func fetchCrunSource(ctx context.Context, tarball, version, sha string) error {
	if checkSHA256(tarball, sha) == nil {
		return nil
	}
	mirror, err := debianMirror(ctx)
	if err != nil {
		return fmt.Errorf("download crun %s: %w", version, err)
	}
	url := mirror + "pool/main/" + poolDir(crunSource) + "/" + crunSource + "/" + crunTarball(version)
	if err := download(ctx, url, tarball, sha); err != nil {
		return fmt.Errorf("download crun %s: %w", version, err)
	}
	return nil
}

// debianMirror is the address of the Debian archive apt is set up to use
// ("http://.../debian/"): its pool holds every source tarball of the
// archive's releases, trixie's among them, whatever release this machine
// runs.
func debianMirror(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-get", "indextargets", "--format", "$(REPO_URI)",
		"Origin: Debian", "Label: Debian", "Created-By: Packages").Output()
	if err != nil {
		return "", fmt.Errorf("ask apt for the Debian archive: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return strings.TrimSuffix(line, "/") + "/", nil
		}
	}
	return "", errors.New("apt knows no Debian archive (run apt-get update)")
}

// poolDir is the directory of a source package in a Debian pool: its
// first letter, or its first four for a lib* package.
func poolDir(source string) string {
	if strings.HasPrefix(source, "lib") && len(source) > 3 {
		return source[:4]
	}
	return source[:1]
}

// download gets url into dst, which must then have sha256 sum sha. The
// file is written beside dst and renamed into place only when complete
// and verified, so a killed or bad download leaves nothing behind.
func download(ctx context.Context, url, dst, sha string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("%s: sha256 is %s, want %s", url, got, sha)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// checkSHA256 returns an error unless the file at p has sha256 sum want
// (lower-case hex).
func checkSHA256(p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 is %s, want %s", p, got, want)
	}
	return nil
}

// extractTarGz unpacks the gzip-compressed tar file at p into dir, with
// each file's mode and modification time: autotools' make compares them,
// and files extracted with the time of extraction could make it run
// autoconf, automake or gperf again. An entry naming a path outside dir
// is an error.
func extractTarGz(p, dir string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer z.Close()
	if err := extractTar(z, dir); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func extractTar(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Directories get their times last: what is made in them changes them.
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := tarEntryPath(dir, hdr.Name)
		if err != nil {
			return err
		}
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(name, mode|0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
			continue
		case tar.TypeReg:
			if err := writeFileFrom(name, mode, tr); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := tarEntryPath(dir, hdr.Linkname)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			if err := os.Link(target, name); err != nil {
				return err
			}
			continue // the target's times are the link's
		case tar.TypeSymlink:
			if err := checkSymlink(hdr.Name, hdr.Linkname); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
			continue // os.Chtimes would follow it
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
		}
		if err := os.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
			return err
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

// tarEntryPath is where the entry called name goes under dir, or an error
// if that is not inside dir.
func tarEntryPath(dir, name string) (string, error) {
	clean := path.Clean(name)
	if path.IsAbs(name) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("tar entry %q: not a path inside the archive", name)
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}

// checkSymlink returns an error unless the symbolic link entry name, to
// target, points inside the archive: a file written through one that
// does not would land outside it.
func checkSymlink(name, target string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("tar entry %q: symbolic link to %q, outside the archive", name, target)
	}
	j := path.Join(path.Dir(name), target)
	if _, err := tarEntryPath("", j); err != nil && j != "." {
		return fmt.Errorf("tar entry %q: symbolic link to %q, outside the archive", name, target)
	}
	return nil
}

func writeFileFrom(name string, mode os.FileMode, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkStaticELF returns an error unless p is an x86-64 ELF program with
// no program interpreter, that is one the kernel runs with no dynamic
// loader or shared libraries (keel/init has neither).
func checkStaticELF(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		return fmt.Errorf("%s: not an x86-64 ELF program (%s, %s)", p, f.Machine, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(prog.Open(), 4096))
			return fmt.Errorf("%s: dynamically linked (interpreter %s), want a static program", p, strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}

// checkCrunRuns runs crun --version and returns an error unless it ran
// and said it is crun version.
func checkCrunRuns(ctx context.Context, prog, version string) error {
	out, err := exec.CommandContext(ctx, prog, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w\n%s", prog, err, tail(string(out), 20))
	}
	return crunVersionIs(string(out), version)
}

// crunVersionIs checks the output of crun --version, whose first line is
// "crun version 1.21".
func crunVersionIs(out, version string) error {
	first, _, _ := strings.Cut(out, "\n")
	if want := "crun version " + version; strings.TrimSpace(first) != want {
		return fmt.Errorf("crun --version says %q, want %q", first, want)
	}
	return nil
}

// runIn runs a command of a build in dir. Its output is kept for the
// error message only, as runGo's.
func runIn(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 40))
	}
	return nil
}

// ensureCrun is the function ensureCrun for the pinned crun, saying on image's
// progress whether it was built or taken from the tools cache.
func (b *builder) ensureCrun(ctx context.Context, image string) (string, error) {
	start := time.Now()
	v := b.versions
	dir, built, err := ensureCrun(ctx, b.toolsDir(), b.downloadsDir(), v.Crun, v.CrunSHA256)
	if err != nil {
		return "", err
	}
	if built {
		b.step(image, "built crun %s in %s", v.Crun, since(start))
	} else {
		b.step(image, "crun %s from the tools cache", v.Crun)
	}
	return dir, nil
}
