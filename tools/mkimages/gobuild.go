package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// staticCgoLdflags link a cgo program (libseccomp) fully static, so it runs
// in an initrd with no libc.
const staticCgoLdflags = "-s -w -linkmode external -extldflags=-static"

// goTool is a set of programs of one Go module at a pinned version, built
// from the module proxy. They are built once per version and kept in the
// tools cache: a build of containerd takes minutes.
type goTool struct {
	Name    string   // cache directory prefix: "containerd"
	Module  string   // "github.com/containerd/containerd/v2"
	Version string   // module version, e.g. "v2.4.2"
	Pkgs    []string // packages below Module to install: "cmd/ctr"; "" is Module itself
	Cgo     bool
	Tags    string
	Ldflags string
}

// binaries are the names of the programs the tool builds.
func (t goTool) binaries() []string {
	var out []string
	for _, p := range t.Pkgs {
		if p == "" {
			p = t.Module
		}
		out = append(out, filepath.Base(p))
	}
	return out
}

// ensure returns the directory holding the tool's binaries, building them
// first if the cache has none for this version. A build goes into a temp
// directory that is renamed into place when complete, so a killed build
// never leaves half a binary where a later run would take it.
func (t goTool) ensure(ctx context.Context, toolsDir string) (dir string, built bool, err error) {
	dir = filepath.Join(toolsDir, t.Name+"-"+t.Version)
	if t.complete(dir) {
		return dir, false, nil
	}
	if err := os.MkdirAll(toolsDir, 0o755); err != nil {
		return "", false, err
	}
	removeStale(toolsDir, "."+t.Name+"-"+t.Version+"-*")
	tmp, err := os.MkdirTemp(toolsDir, "."+t.Name+"-"+t.Version+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)

	args := []string{"install", "-trimpath"}
	if t.Tags != "" {
		args = append(args, "-tags", t.Tags)
	}
	args = append(args, "-ldflags", t.Ldflags)
	for _, p := range t.Pkgs {
		args = append(args, strings.TrimSuffix(t.Module+"/"+p, "/")+"@"+t.Version)
	}
	// Run outside keel's module, so that go install resolves the tool's
	// own go.mod and nothing of keel's leaks in.
	if err := runGo(ctx, toolsDir, []string{"GOBIN=" + tmp, cgoEnv(t.Cgo)}, args...); err != nil {
		return "", false, fmt.Errorf("build %s %s: %w", t.Module, t.Version, err)
	}
	for _, b := range t.binaries() {
		if st, err := os.Stat(filepath.Join(tmp, b)); err != nil || !st.Mode().IsRegular() {
			return "", false, fmt.Errorf("build %s %s: go install did not produce %s", t.Module, t.Version, strings.Join(t.binaries(), ", "))
		}
	}
	if err := storeTool(tmp, dir, t.buildStamp()); err != nil {
		return "", false, fmt.Errorf("store %s %s in the tools cache: %w", t.Name, t.Version, err)
	}
	return dir, true, nil
}

// complete reports whether dir holds every binary of the tool, built
// with the tool's current tags and flags (its buildStamp).
func (t goTool) complete(dir string) bool {
	for _, b := range t.binaries() {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, buildStampFile))
	return err == nil && string(b) == t.buildStamp()
}

// buildStampFile, beside a tool's binaries, says how they were built, so
// that a change of tags or flags builds them again though the version is
// the same (the directory's name, which others rely on, stays).
const buildStampFile = ".build"

func (t goTool) buildStamp() string {
	return fmt.Sprintf("tags=%s\nldflags=%s\ncgo=%t\n", t.Tags, t.Ldflags, t.Cgo)
}

// storeTool puts a complete build, made in the temp directory tmp, at dir
// in the tools cache: it writes the build stamp (buildStampFile), makes
// the directory public (MkdirTemp made it private), removes an older
// build of the same version (other tags or flags) and renames tmp into
// place, so that a killed build never leaves half a tool where a later
// run would take it.
func storeTool(tmp, dir, stamp string) error {
	if err := os.WriteFile(filepath.Join(tmp, buildStampFile), []byte(stamp), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// removeStale removes what killed builds left behind: temp directories
// matching pattern that are more than a day old (younger ones may belong
// to a build running right now).
func removeStale(dir, pattern string) {
	old, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
			os.RemoveAll(p)
		}
	}
}

// ensureTool is tool.ensure, saying on image's progress whether it was
// built or taken from the tools cache.
func (b *builder) ensureTool(ctx context.Context, image string, tool goTool) (string, error) {
	start := time.Now()
	dir, built, err := tool.ensure(ctx, b.toolsDir())
	if err != nil {
		return "", err
	}
	if built {
		b.step(image, "built %s %s in %s", tool.Name, tool.Version, since(start))
	} else {
		b.step(image, "%s %s from the tools cache", tool.Name, tool.Version)
	}
	return dir, nil
}

// containerdModule is the containerd PID 1's binary carries
// (pkg/containerdcmd).
const containerdModule = "github.com/containerd/containerd/v2"

// initNames are the names PID 1's binary is run as besides init: it is
// containerd, ctr and the runc shim too (pkg/containerdcmd). keel/init has
// them in /usr/bin as hard links to /init, and the tools cache keeps the
// last PID 1 built under each (keelInitDir) for the root tests.
var initNames = []string{"containerd", "ctr", "containerd-shim-runc-v2"}

// keelInitDir is the tools cache directory holding the last PID 1 built,
// as init and under each of initNames.
const keelInitDir = "keel-init"

// buildInit builds keel's PID 1 from ./cmd/init of the module at src into
// dir/init, static, with seccomp support for libcontainer, and links it
// there under each of initNames; and ./cmd/squashfsinit into
// dir/squashfs-init. Its containerd is the version keel's
// go.mod requires, which must be the one versions.env pins: the two could
// drift apart unseen otherwise.
func buildInit(ctx context.Context, src, dir, containerdVersion string) error {
	out, err := outputGo(ctx, src, "list", "-m", "-f", "{{.Version}}", containerdModule)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != containerdVersion {
		return fmt.Errorf("containerd: versions.env pins CONTAINERD_VERSION=%s but go.mod requires %s %s; change both together (go get %s@%s)",
			containerdVersion, containerdModule, got, containerdModule, containerdVersion)
	}
	bin := filepath.Join(dir, "init")
	err = runGo(ctx, src, []string{cgoEnv(true)},
		"build", "-trimpath", "-tags", "seccomp,netgo,osusergo", "-ldflags", initLdflags(containerdVersion),
		"-o", bin, "./cmd/init")
	if err != nil {
		return fmt.Errorf("build PID 1 (./cmd/init): %w", err)
	}
	for _, name := range initNames {
		if err := os.Link(bin, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	// The small initrd's init of kernel+squashfs builds: no cgo, no
	// containerd, a few MB.
	err = runGo(ctx, src, []string{cgoEnv(false)},
		"build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, squashfsInitName), "./cmd/squashfsinit")
	if err != nil {
		return fmt.Errorf("build the squashfs initrd's init (./cmd/squashfsinit): %w", err)
	}
	return nil
}

// squashfsInitName is the small init's name in the tools cache's
// keelInitDir.
const squashfsInitName = "squashfs-init"

// initLdflags link PID 1 static and stripped, and set the version its
// containerd reports, as containerd's own Makefile does (built from
// another module, it would say "2.4.2+unknown").
func initLdflags(containerdVersion string) string {
	return staticCgoLdflags + " -X " + containerdModule + "/version.Version=" + containerdVersion
}

func cgoEnv(on bool) string {
	if on {
		return "CGO_ENABLED=1"
	}
	return "CGO_ENABLED=0"
}

// runGo runs the go command in dir for a linux/amd64 target. Its output is
// kept for the error message only: a good build says nothing.
func runGo(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GOWORK=off")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 40))
	}
	return nil
}

// outputGo runs the go command in dir and returns what it printed on
// standard output.
func outputGo(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 20))
	}
	return string(out), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
