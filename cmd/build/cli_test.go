package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	units "github.com/docker/go-units"

	"github.com/keel-os/keel/pkg/oci"
)

// The CLI tests run the keel binary itself, built once per test run: what
// a user types, what lands on stdout and stderr, and the exit status.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// keelBinary builds ./cmd/build once, on first use.
func keelBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "keel-cli-test-*"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "keel")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// result is what one run of keel did.
type result struct {
	stdout, stderr string
	code           int
}

// keelIn runs keel ARGS in dir with stdin (nil: none) and, when cache is
// not "", $KEEL_CACHE set to it.
func keelIn(t *testing.T, dir, cache string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(keelBinary(t), args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	if cache != "" {
		cmd.Env = append(os.Environ(), "KEEL_CACHE="+cache)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("keel %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func keelRun(t *testing.T, args ...string) result {
	t.Helper()
	return keelIn(t, "", "", nil, args...)
}

// ok fails the test unless r is a success.
func (r result) ok(t *testing.T, args ...string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("keel %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"-help"},
		{"build", "--help"}, {"build", "-h"}, {"build", "-help"}, {"help", "build"}, {"build", "x.yml", "--help"},
		{"cache", "--help"}, {"cache", "export", "--help"}, {"run", "--help"}, {"help", "run"}, {"help", "cache", "ls"},
	} {
		r := keelRun(t, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:\n  keel ") {
			t.Errorf("keel %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
		}
	}
	// Defaults are shown.
	r := keelRun(t, "build", "--help")
	for _, want := range []string{`--dir DIR `, `(default ".")`, `--arch ARCH `, `(default "amd64")`, `(default gzip)`, "-q, --quiet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("keel build --help has no %q:\n%s", want, r.stdout)
		}
	}
}

// A command line keel cannot read: exit 2, nothing on stdout, and exactly
// one line on stderr that names the problem and where the help is.
func TestCLIBadUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "--bogus", "x.yml"}, "keel: build: unknown flag: --bogus (see `keel build --help`)"},
		{[]string{"build", "x.yml", "-bogus"}, "keel: build: unknown shorthand flag: 'b' in -bogus (see `keel build --help`)"},
		{[]string{"build", "x.yml", "--dir"}, "keel: build: flag needs an argument: --dir (see `keel build --help`)"},
		{[]string{"build"}, "keel: build: want a YAML file (see `keel build --help`)"},
		{[]string{"build", "--arch", "mips", "x.yml"}, "keel: build: --arch \"mips\": want amd64 or arm64 (see `keel build --help`)"},
		{[]string{"build", "--format", "iso", "x.yml"}, "keel: build: invalid argument \"iso\" for \"--format\" flag: "},
		{[]string{"frobnicate"}, "keel: unknown command \"frobnicate\" (see `keel --help`)"},
		{[]string{"help", "frobnicate"}, "keel: help: no command \"frobnicate\" (see `keel --help`)"},
		{[]string{"help", "cache", "frob"}, "keel: help: no command \"cache frob\" (see `keel --help`)"},
		{[]string{"cache", "lss"}, "keel: cache: unknown command \"lss\"; did you mean ls? (see `keel cache --help`)"},
		{[]string{"cache", "ls", "extra"}, "keel: cache ls: unexpected argument \"extra\": want no arguments (see `keel cache ls --help`)"},
		{[]string{"version", "--nope"}, "keel: version: unknown flag: --nope (see `keel version --help`)"},
		{[]string{"run", "--mem", "lots", "x"}, "keel: run: invalid argument \"lots\" for \"--mem\" flag: "},
	} {
		r := keelRun(t, c.args...)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if r.code != exitUsage || r.stdout != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) || !strings.HasSuffix(r.stderr, "\n") {
			t.Errorf("keel %s: exit %d, stdout %q, stderr %q; want exit 2 and the one line %q",
				strings.Join(c.args, " "), r.code, r.stdout, r.stderr, c.want)
		}
	}
}

// A failure that is not the command line's: exit 1, one line.
func TestCLIFailure(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	yml := writeFile(t, filepath.Join(dir, "bad.yml"), "kernel:\n  image: k\n  cmdlin: x\ninit: [i]\n")
	r := keelRun(t, "validate", yml)
	if want := "keel: " + yml + ":3:3: kernel: unknown key \"cmdlin\" (did you mean \"cmdline\"?)\n"; r.code != 1 || r.stderr != want || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.stdout, r.stderr, want)
	}
}

func TestCLIVersion(t *testing.T) {
	want := keelRun(t, "version").ok(t, "version").stdout
	if !strings.HasPrefix(want, "keel ") || strings.Count(want, "\n") != 1 {
		t.Fatalf("keel version: %q", want)
	}
	for _, flag := range []string{"--version", "-version"} {
		if r := keelRun(t, flag).ok(t, flag); r.stdout != want || r.stderr != "" {
			t.Errorf("keel %s: %q %q, want %q as keel version", flag, r.stdout, r.stderr, want)
		}
	}
}

func TestCLICompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_keel()",
		"zsh":  "#compdef keel",
		"fish": "complete -c keel ",
	} {
		r := keelRun(t, "completion", shell).ok(t, "completion", shell)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("keel completion %s has no %q", shell, want)
		}
	}
	// Flag values, asked as the shell asks.
	for args, want := range map[string]string{
		"build x.yml --format ":      "kernel+initrd\ntar\ntar-kernel-initrd\n",
		"build --compress ":          "gzip\nzstd\nlz4\nnone\n",
		"run --accel ":               "auto\nkvm\ntcg\n",
		"cache export x - --format ": "oci\ndocker-archive\n",
	} {
		r := keelRun(t, append([]string{"__complete"}, append(strings.Fields(args), "")...)...).ok(t)
		if !strings.HasPrefix(r.stdout, want) {
			t.Errorf("completion of keel %s: %q, want %q first", args, r.stdout, want)
		}
	}
	// The completion of a subcommand, asked as the shell asks.
	r := keelRun(t, "__complete", "cache", "").ok(t)
	for _, want := range []string{"ls\t", "import\t", "export\t"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion of keel cache: no %q in\n%s", want, r.stdout)
		}
	}
}

// Flags after the arguments, flags before, old one-dash spellings: one
// and the same build.
func TestCLIFlagsAnywhere(t *testing.T) {
	_, host := testImages(t)
	dir := t.TempDir()
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	t.Setenv("SOURCE_DATE_EPOCH", "")
	yml := writeFile(t, filepath.Join(dir, "demo.yml"), strings.ReplaceAll(testYAML, "{{R}}", host))

	for _, args := range [][]string{
		{"build", yml, "--dir", filepath.Join(dir, "a"), "--progress", "plain"},
		{"build", "--dir=" + filepath.Join(dir, "b"), "--progress=plain", yml},
		{"build", "-dir", filepath.Join(dir, "c"), "-progress=plain", yml},
		{"build", yml, "-progress", "plain", "-dir", filepath.Join(dir, "d")},
	} {
		r := keelRun(t, args...).ok(t, args...)
		out := args[flagValueIndex(args, "dir")]
		out = strings.TrimPrefix(out, "--dir=")
		// Every output, and the lock file, is listed and is 0644.
		var wrote []string
		for _, line := range strings.Split(r.stdout, "\n") {
			if p, ok := strings.CutPrefix(line, "wrote "); ok {
				wrote = append(wrote, p)
			}
		}
		want := []string{"demo-kernel", "demo-initrd.img", "demo-cmdline", "demo.lock.json"}
		for i := range want {
			want[i] = filepath.Join(out, want[i])
		}
		if !reflect.DeepEqual(wrote, want) {
			t.Errorf("keel %s: wrote %q, want %q", strings.Join(args, " "), wrote, want)
		}
		for _, p := range want {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
				t.Errorf("%s: %v %v, want mode 0644", p, st.Mode(), err)
			}
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a", "demo-initrd.img"))
	d, _ := os.ReadFile(filepath.Join(dir, "d", "demo-initrd.img"))
	if len(a) == 0 || !bytes.Equal(a, d) {
		t.Error("the builds differ")
	}
}

// flagValueIndex is the index of the word after the one that names flag
// (--flag, -flag or --flag=value, which is its own value).
func flagValueIndex(args []string, flag string) int {
	for i, a := range args {
		switch {
		case a == "--"+flag || a == "-"+flag:
			return i + 1
		case strings.HasPrefix(a, "--"+flag+"="):
			return i
		}
	}
	return -1
}

func TestSingleDashLongFlags(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"build -dir out x.yml", "build --dir out x.yml"},
		{"build x.yml -dir=out -q -", "build x.yml --dir=out -q -"},
		// A flag's value is never rewritten, even one that looks like a flag.
		{"run -append -name x", "run --append -name x"},
		{"build --name -dir x.yml", "build --name -dir x.yml"},
		// Nor anything after --, nor what no flag of the command is called.
		{"build -- -dir", "build -- -dir"},
		{"build -mem x.yml", "build -mem x.yml"},
		{"run -mem 2G x", "run --mem 2G x"},
		{"cache ls -l", "cache ls -l"},
		{"cache import -tag a:b -arch arm64 f.tar", "cache import --tag a:b --arch arm64 f.tar"},
		{"-version", "--version"},
		{"build -help", "build --help"},
	} {
		got := strings.Join(singleDashLongFlags(newRootCmd(), strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%q -> %q, want %q", c.in, got, c.want)
		}
	}
}

// keel build --dry-run prints the merged YAML, which validates as it is;
// a build of several files is named after the last one.
func TestCLIMergedBuild(t *testing.T) {
	_, host := testImages(t)
	dir := t.TempDir()
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	full := strings.ReplaceAll(testYAML, "{{R}}", host)
	cut := strings.Index(full, "onshutdown:")
	base := writeFile(t, filepath.Join(dir, "base.yml"), full[:cut])
	extra := writeFile(t, filepath.Join(dir, "extra.yml"), full[cut:])

	r := keelRun(t, "build", base, extra, "--dry-run").ok(t)
	for _, want := range []string{"kernel:\n", "name: hello", "name: bye", "name: getty", "cmdline: console=ttyS0 quiet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("merged YAML has no %q:\n%s", want, r.stdout)
		}
	}
	merged := writeFile(t, filepath.Join(dir, "merged.yml"), r.stdout)
	want := keelRun(t, "validate", base, extra).ok(t).stdout
	got := keelRun(t, "validate", merged).ok(t).stdout
	if strings.TrimPrefix(want, base+" + "+extra) != strings.TrimPrefix(got, merged) {
		t.Errorf("the merged YAML validates as %q, the files as %q", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("--dry-run wrote something: %v", entries)
	}

	out := filepath.Join(dir, "out")
	keelRun(t, "build", "-q", "--dir", out, base, extra).ok(t)
	for _, f := range []string{"extra-kernel", "extra-initrd.img", "extra-cmdline", "extra.lock.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

// keel cache pull, ls -l, push, and export to standard output read back by
// import from standard input, in both formats, between caches.
func TestCLICache(t *testing.T) {
	_, host := testImages(t)
	dir := t.TempDir()
	cache1, cache2 := filepath.Join(dir, "cache1"), filepath.Join(dir, "cache2")
	ref := host + "/keel/busybox:test"

	r := keelIn(t, "", cache1, nil, "cache", "pull", ref, "--progress=plain").ok(t)
	c, err := oci.OpenCache(cache1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	if want := "image " + ref + " " + digest.String() + "\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("pull printed %q, want it to end with %q", r.stdout, want)
	}

	r = keelIn(t, "", cache1, nil, "cache", "ls", "-l").ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "REFERENCE PLATFORM SIZE DIGEST" {
		t.Fatalf("ls -l:\n%s", r.stdout)
	}
	// The size is the manifest's, the config's and the layers'.
	cf, _ := img.ConfigFile()
	m, _ := img.Manifest()
	raw, _ := img.RawManifest()
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	if got, want := strings.Fields(lines[1]), []string{ref, cf.OS + "/" + cf.Architecture, units.HumanSize(float64(size)), digest.String()}; !reflect.DeepEqual(got, want) {
		t.Errorf("ls -l row %q, want %q", got, want)
	}

	// push, then pull the pushed name into another cache.
	dest := host + "/copy/busybox:1"
	r = keelIn(t, "", cache1, nil, "cache", "push", ref, dest).ok(t)
	if want := "pushed " + host + "/copy/busybox@" + digest.String() + "\n"; r.stdout != want {
		t.Errorf("push printed %q, want %q", r.stdout, want)
	}
	keelIn(t, "", cache2, nil, "cache", "pull", "-q", dest).ok(t)
	if r := keelIn(t, "", cache2, nil, "cache", "ls").ok(t); r.stdout != dest+"\n" {
		t.Errorf("cache2 holds %q, want %s", r.stdout, dest)
	}

	for _, format := range []string{"oci", "docker-archive"} {
		r := keelIn(t, "", cache1, nil, "cache", "export", ref, "-", "--format", format).ok(t)
		cache3 := filepath.Join(t.TempDir(), "cache")
		in := keelIn(t, "", cache3, strings.NewReader(r.stdout), "cache", "import", "-").ok(t)
		if in.stdout != "imported "+ref+"\n" {
			t.Errorf("%s: import - printed %q", format, in.stdout)
		}
		c3, err := oci.OpenCache(cache3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c3.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if d, _ := got.Digest(); d != digest {
			t.Errorf("%s: round trip gave %s, want %s", format, d, digest)
		}
		// The same bytes to a file, 0644.
		file := filepath.Join(t.TempDir(), "x.tar")
		keelIn(t, "", cache1, nil, "cache", "export", "--format="+format, ref, file).ok(t)
		b, err := os.ReadFile(file)
		if st, _ := os.Stat(file); err != nil || string(b) != r.stdout || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: the file differs from standard output, or is not 0644 (%v)", format, err)
		}
	}
	if r := keelIn(t, "", cache1, nil, "cache", "export", "--format", "zip", ref, "-"); r.code != exitUsage || r.stdout != "" {
		t.Errorf("--format zip: exit %d, stdout %d bytes", r.code, len(r.stdout))
	}
}

// keel run's argument forms, checked through the QEMU command line that
// --dry-run prints: nothing is booted, and nothing is created.
func TestCLIRunForms(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "demo-kernel"), "bzImage")
	writeFile(t, filepath.Join(dir, "demo-initrd.img"), "initrd")
	writeFile(t, filepath.Join(dir, "demo-cmdline"), "console=ttyS0 quiet\n")
	writeFile(t, filepath.Join(dir, "demo.lock.json"), "{}")
	// A tar-kernel-initrd output, as keel build --format tar-kernel-initrd
	// writes it, and a tar that is not one.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, f := range []struct{ name, data string }{{"kernel", "bzImage"}, {"initrd.img", "initrd"}, {"cmdline", "console=ttyS0 from-tar\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		io.WriteString(tw, f.data)
	}
	tw.Close()
	writeFile(t, filepath.Join(dir, "packed-initrd.tar"), tb.String())
	writeFile(t, filepath.Join(dir, "packed.lock.json"), "{}")
	writeFile(t, filepath.Join(dir, "other.tar"), string(tarBytes(t, file{name: "kernel", data: "k"})))

	run := func(args ...string) result {
		t.Helper()
		return keelIn(t, dir, "", nil, append([]string{"run", "--dry-run", "--accel", "tcg"}, args...)...)
	}
	base := run("demo").ok(t, "run demo").stdout
	for _, want := range []string{
		"qemu-system-x86_64 ", " -kernel demo-kernel ", " -initrd demo-initrd.img ", " -append 'console=ttyS0 quiet' ",
		" -m 1024 ", " -smp 2 ", " -accel tcg,thread=multi ", " -serial mon:stdio ", " -qmp unix:demo-state/qmp.sock,server=on,wait=off",
	} {
		if !strings.Contains(base, want) {
			t.Errorf("keel run demo: no %q in\n%s", want, base)
		}
	}
	// Any of NAME's files, and linuxkit's "run qemu", name the same boot.
	for _, args := range [][]string{{"demo-kernel"}, {"demo-initrd.img"}, {"demo-cmdline"}, {"demo.lock.json"}, {"qemu", "demo"}, {"qemu", "demo-kernel"}} {
		if got := run(args...).ok(t, args...).stdout; got != base {
			t.Errorf("keel run %s:\n%s\nwant as keel run demo:\n%s", strings.Join(args, " "), got, base)
		}
	}
	// A tar-kernel-initrd output, by NAME or by file: its files are taken
	// into the state directory (only named, in a dry run).
	for _, arg := range []string{"packed", "packed-initrd.tar", "packed.lock.json"} {
		got := run(arg).ok(t, arg).stdout
		for _, want := range []string{" -kernel packed-state/kernel ", " -initrd packed-state/initrd.img ", " -append 'console=ttyS0 from-tar' "} {
			if !strings.Contains(got, want) {
				t.Errorf("keel run %s: no %q in\n%s", arg, want, got)
			}
		}
	}

	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--mem", "2G", "--cpus", "4", "demo"}, []string{" -m 2048 ", " -smp 4 "}},
		{[]string{"-mem", "512", "demo"}, []string{" -m 512 "}},
		{[]string{"demo", "--append", "keel.oneshot"}, []string{" -append 'console=ttyS0 quiet keel.oneshot' "}},
		{[]string{"demo", "--cmdline", "console=hvc0"}, []string{" -append console=hvc0 "}},
		{[]string{"demo", "--disk", "file=data.qcow2,size=1G", "--disk", "size=512M", "--disk", "old.img"}, []string{
			" -drive file=data.qcow2,if=virtio,format=qcow2,cache=writeback ",
			" -drive file=demo-state/disk1.img,if=virtio,format=raw,cache=writeback ",
			" -drive file=old.img,if=virtio,format=raw,cache=writeback ",
		}},
		{[]string{"demo", "--state", "st", "--disk", "size=1G,format=qcow2"}, []string{
			" -drive file=st/disk0.qcow2,if=virtio,format=qcow2,cache=writeback ", " -qmp unix:st/qmp.sock,server=on,wait=off",
		}},
		{[]string{"demo", "--publish", "8080:80", "--publish", "127.0.0.1:5353:53/udp"}, []string{
			" -netdev user,id=net0,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53 ",
		}},
		{[]string{"demo", "--detached"}, []string{" -serial file:demo-state/console.log ", " -daemonize -pidfile demo-state/qemu.pid"}},
		{[]string{"demo", "--no-network", "--no-reboot", "--qmp", "/tmp/q.sock"}, []string{" -qmp unix:/tmp/q.sock,server=on,wait=off -no-reboot"}},
	} {
		got := run(c.args...).ok(t, c.args...).stdout
		for _, want := range c.want {
			if !strings.Contains(got, want) {
				t.Errorf("keel run %s: no %q in\n%s", strings.Join(c.args, " "), want, got)
			}
		}
	}
	// A disk image boots as what it is, said on stderr; --uefi takes OVMF
	// with the variable store in the state directory.
	writeFile(t, filepath.Join(dir, "demo-efi.qcow2"), "QFI\xfb"+strings.Repeat("\x00", 508))
	for _, c := range []struct {
		args           []string
		stdout, stderr []string
	}{
		{[]string{"demo-efi.qcow2"}, []string{"format=qcow2", "if=pflash", "demo-efi-state/OVMF_VARS.fd"}, []string{"keel: run demo-efi.qcow2: "}},
		{[]string{"--uefi", "demo"}, []string{" -kernel demo-kernel ", "if=pflash", "demo-state/OVMF_VARS.fd"}, []string{"direct kernel boot (-kernel) under UEFI (OVMF)"}},
		{[]string{"demo"}, nil, []string{"direct kernel boot (-kernel) under BIOS (SeaBIOS)"}},
	} {
		r := run(c.args...).ok(t, c.args...)
		for _, want := range c.stdout {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("keel run %s: no %q in\n%s", strings.Join(c.args, " "), want, r.stdout)
			}
		}
		for _, want := range c.stderr {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("keel run %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), want, r.stderr)
			}
		}
	}
	if r := run("demo-efi.qcow2", "--append", "x"); r.code != 2 || !strings.Contains(r.stderr, "carries its own kernel command line") {
		t.Errorf("--append with a disk image: exit %d, %q", r.code, r.stderr)
	}
	if got := run("demo", "--no-network").stdout; strings.Contains(got, "-netdev") {
		t.Errorf("--no-network: %s", got)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nothing"}, 1, "keel: run: nothing: no nothing-kernel or nothing-initrd.tar: "},
		{[]string{"other.tar"}, 1, "keel: run: other.tar: not a tar-kernel-initrd output: "},
		{[]string{"demo", "--publish", "80"}, 2, "keel: run: --publish: publish \"80\": no guest port"},
		{[]string{"demo", "--disk", "size=1G,format=vmdk"}, 2, "keel: run: --disk: disk \"size=1G,format=vmdk\": format \"vmdk\": want raw or qcow2"},
		{[]string{"demo", "--mem", "2X"}, 2, "keel: run: invalid argument \"2X\" for \"--mem\" flag: memory \"2X\": "},
		{[]string{"demo", "extra"}, 2, "keel: run: unexpected argument \"extra\": want one NAME"},
		{[]string{"--stop"}, 2, "keel: run: --stop: want NAME or --state DIR"},
	} {
		r := run(c.args...)
		if r.code != c.code || !strings.HasPrefix(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("keel run %s: exit %d, stderr %q; want exit %d and one line %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
	// A dry run made nothing: no state directory, no disk (the 8 files are
	// the fixtures).
	entries, _ := os.ReadDir(dir)
	if len(entries) != 8 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the dry runs left %q", names)
	}
}

// keel run --stop powers off the VM of a state directory through its QMP
// socket (served here by a stand-in for QEMU).
func TestCLIRunStop(t *testing.T) {
	state := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(state, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []string, 1)
	go func() {
		var cmds []string
		defer func() { got <- cmds }()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "{\"QMP\": {}}\n")
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var req struct{ Execute string }
			json.Unmarshal(sc.Bytes(), &req)
			cmds = append(cmds, req.Execute)
			io.WriteString(conn, "{\"return\": {}}\n")
			if req.Execute == "system_powerdown" {
				return // QEMU exits once the guest has powered off
			}
		}
	}()
	r := keelRun(t, "run", "--stop", "--state", state).ok(t)
	if want := "stopped " + state + ": the guest powered off\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if cmds := <-got; !reflect.DeepEqual(cmds, []string{"qmp_capabilities", "system_powerdown"}) {
		t.Errorf("QMP commands %q", cmds)
	}
	if r := keelRun(t, "run", "--stop", "--state", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "no VM answers on ") {
		t.Errorf("--stop with no VM: exit %d, %q", r.code, r.stderr)
	}
}
