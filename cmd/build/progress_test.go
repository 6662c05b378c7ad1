package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runBuild runs `keel build ARGS` as main would, with stdout and stderr
// going to files (not terminals, as in a pipe or CI), and returns what
// each got.
func runBuild(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	saved := [2]*os.File{os.Stdout, os.Stderr}
	os.Stdout, os.Stderr = outF, errF
	err = dispatch(append([]string{"build"}, args...))
	os.Stdout, os.Stderr = saved[0], saved[1]
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	if err != nil {
		t.Fatalf("keel build %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, o, e)
	}
	return string(o), string(e)
}

func TestBuildProgress(t *testing.T) {
	_, host := testImages(t)
	t.Setenv("KEEL_CACHE", filepath.Join(t.TempDir(), "cache"))
	dir := t.TempDir()
	yml := filepath.Join(dir, "demo.yml")
	if err := os.WriteFile(yml, []byte(strings.ReplaceAll(testYAML, "{{R}}", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")

	// Piped (the default, auto): whole lines on stdout, no escapes.
	stdout, stderr := runBuild(t, "-dir", out, yml)
	if strings.ContainsRune(stdout+stderr, '\x1b') {
		t.Errorf("piped build wrote escape sequences:\nstdout %q\nstderr %q", stdout, stderr)
	}
	if !strings.HasSuffix(stdout, "\n") {
		t.Errorf("piped build's output does not end a line: %q", stdout)
	}
	var pulls int
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "pull ") {
			pulls++
			if !strings.HasSuffix(line, "layers cached") {
				t.Errorf("pull line %q has no summary", line)
			}
		}
	}
	if pulls != 3 {
		t.Errorf("%d pull lines, want one per image (3):\n%s", pulls, stdout)
	}
	for _, want := range []string{"\ninitrd demo-initrd.img: ", "gzip, 2 segments, 0 reused\n" /* the root, and one for the four bundles of one image */, "\nwrote " + filepath.Join(out, "demo-initrd.img") + "\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("piped build's output has no %q:\n%s", want, stdout)
		}
	}

	// -q and -progress=none: nothing.
	for _, flag := range []string{"-q", "-progress=none"} {
		if stdout, stderr := runBuild(t, flag, "-pull", "-dir", out, yml); stdout != "" || stderr != "" {
			t.Errorf("%s: stdout %q, stderr %q", flag, stdout, stderr)
		}
	}

	// Forced tty: the live display on stderr, nothing on stdout; the
	// summaries are there too.
	stdout, stderr = runBuild(t, "-progress=tty", "-pull", "-dir", out, yml)
	if stdout != "" {
		t.Errorf("-progress=tty wrote on stdout: %q", stdout)
	}
	for _, want := range []string{"\x1b[", "pull " + host + "/keel/busybox:test: ", "initrd demo-initrd.img: "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("-progress=tty: stderr has no %q:\n%q", want, stderr)
		}
	}
}

func TestBuildRejectsUnknownProgressMode(t *testing.T) {
	err := dispatch([]string{"build", "-progress=fancy", "x.yml"})
	if err == nil || !strings.Contains(err.Error(), "want one of auto, plain, tty, none") {
		t.Errorf("error = %v", err)
	}
}
