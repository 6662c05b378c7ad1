// Package qemu_test boots real keel images under QEMU: the base images from
// the local cache (made by tools/mkimages) are served from a registry on
// 127.0.0.1, `keel build` pulls them into an empty cache, and the VM's serial
// console is read line by line.
package qemu_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keel-os/keel/pkg/oci"
	"github.com/keel-os/keel/pkg/qemu"
)

var (
	repoRoot = mustAbs("../..")
	keelBin  string // built once in TestMain
	runDir   string // removed when the run ends
	versions map[string]string
	// registryHost serves the base images for the whole run.
	registryHost string
	// accel is chosen once, by a probe boot of the first kernel built.
	accel     string
	accelOnce sync.Once
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func TestMain(m *testing.M) {
	if os.Getenv("KEEL_BOOT_TESTS") == "" {
		fmt.Println("boot tests skipped: they run under `make test-boot` (KEEL_BOOT_TESTS=1), which makes the base images first")
		os.Exit(m.Run())
	}
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "keel-boot-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	runDir = tmp

	keelBin = filepath.Join(tmp, "keel")
	build := exec.Command("go", "build", "-o", keelBin, "./cmd/build")
	build.Dir, build.Stdout, build.Stderr = repoRoot, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("build keel: %v", err)
	}
	if versions, err = readVersions(filepath.Join(repoRoot, "tools/versions.env")); err != nil {
		log.Fatal(err)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	registryHost = strings.TrimPrefix(srv.URL, "http://")
	if err := pushBaseImages(registryHost); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("boot tests: registry %s\n", registryHost)
	return m.Run()
}

// baseImages are the refs tools/mkimages makes, from tools/versions.env.
func baseImages() map[string]string {
	return map[string]string{
		"Kernel":  "keel/kernel:" + versions["KERNEL_ABI"],
		"Init":    "keel/init:" + versions["KEEL_VERSION"],
		"Busybox": "keel/busybox:" + versions["BUSYBOX_TAG"],
		"Boot":    "keel/boot:" + versions["SYSTEMD_BOOT_VERSION"] + "-" + versions["SYSLINUX_VERSION"],
	}
}

// pushBaseImages copies the base images from the local cache into the test
// registry, so that builds in the tests pull them like any remote image.
func pushBaseImages(host string) error {
	cache, err := oci.OpenCache(oci.DefaultCacheDir())
	if err != nil {
		return err
	}
	for _, ref := range baseImages() {
		img, err := cache.Image(ref)
		if err != nil {
			return fmt.Errorf("%w (run `make images` first)", err)
		}
		dst, err := name.ParseReference(host + "/" + ref)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img); err != nil {
			return fmt.Errorf("push %s: %w", dst, err)
		}
	}
	return nil
}

func readVersions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if k, val, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			v[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	return v, nil
}

func requireBoot(t *testing.T) {
	t.Helper()
	if os.Getenv("KEEL_BOOT_TESTS") == "" {
		t.Skip("boot test: run under `make test-boot` (KEEL_BOOT_TESTS=1)")
	}
}

// buildImage renders yamlTmpl (with .Registry, .Kernel, .Init, .Busybox) to a
// file and runs `keel build` on it with an empty cache, so every image is
// pulled from the test registry. It returns the output prefix for keel run.
func buildImage(t *testing.T, name, yamlTmpl string) string {
	t.Helper()
	data := map[string]string{"Registry": registryHost}
	for k, ref := range baseImages() {
		data[k] = registryHost + "/" + ref
	}
	var buf bytes.Buffer
	if err := template.Must(template.New(name).Parse(yamlTmpl)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yml := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(yml, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(keelBin, "build", "-dir", out, yml)
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+filepath.Join(dir, "cache"))
	b, err := cmd.CombinedOutput()
	t.Logf("keel build %s:\n%s", name, b)
	if err != nil {
		t.Fatalf("keel build: %v", err)
	}
	return filepath.Join(out, name)
}

// VM is a booted guest whose serial console the test reads.
type VM struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	QMPPath string

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
	done  chan struct{}
	err   error // QEMU's exit, once done is closed
}

// boot starts the image at prefix under QEMU with a QMP socket and no
// reboot, so that both power-off and reboot end the QEMU process.
func boot(t *testing.T, prefix string, tweak func(*qemu.Machine)) *VM {
	t.Helper()
	// prefix "" boots no kernel: tweak attaches the boot media.
	var cmdline []byte
	var kernel, initrd string
	if prefix != "" {
		var err error
		if cmdline, err = os.ReadFile(prefix + "-cmdline"); err != nil {
			t.Fatal(err)
		}
		kernel, initrd = prefix+"-kernel", prefix+"-initrd.img"
	}
	accelOnce.Do(func() {
		var why string
		accel, why = qemu.Detect(context.Background(), kernel)
		fmt.Printf("boot tests: accel %s (%s)\n", accel, why)
	})
	dir := t.TempDir()
	m := &qemu.Machine{
		Kernel: kernel, Initrd: initrd,
		Cmdline: strings.TrimSpace(string(cmdline)),
		Accel:   accel, QMP: filepath.Join(dir, "qmp.sock"), NoReboot: true,
	}
	if tweak != nil {
		tweak(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	cmd, err := m.Command(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vm := &VM{t: t, cmd: cmd, QMPPath: m.QMP, more: make(chan struct{}), done: make(chan struct{})}
	if vm.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	consoleLog, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(consoleLog, line)
			vm.mu.Lock()
			vm.lines = append(vm.lines, line)
			close(vm.more)
			vm.more = make(chan struct{})
			vm.mu.Unlock()
		}
		vm.err = cmd.Wait()
		consoleLog.Close()
		close(vm.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-vm.done
		if t.Failed() {
			b, _ := os.ReadFile(consoleLog.Name())
			t.Logf("console:\n%s", b)
		}
	})
	return vm
}

// Expect waits for a console line matching pattern, at line index from or
// later, and returns the index of the matching line. It fails the test if QEMU
// exits or the wait runs out first; the timeout guards against a hang and
// says nothing about speed.
func (vm *VM) Expect(from int, pattern string, timeout time.Duration) int {
	vm.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(timeout)
	for i := from; ; {
		vm.mu.Lock()
		for ; i < len(vm.lines); i++ {
			if re.MatchString(vm.lines[i]) {
				vm.mu.Unlock()
				return i
			}
		}
		more := vm.more
		vm.mu.Unlock()
		select {
		case <-more:
		case <-vm.done:
			// Drain what the last lines may hold before giving up.
			vm.mu.Lock()
			n := len(vm.lines)
			vm.mu.Unlock()
			if i < n {
				continue
			}
			vm.t.Fatalf("qemu exited (%v) before the console showed %q", vm.err, pattern)
		case <-deadline:
			vm.t.Fatalf("no console line matching %q within %s", pattern, timeout)
		}
	}
}

// Wait waits for QEMU to exit and returns its error.
func (vm *VM) Wait(timeout time.Duration) error {
	vm.t.Helper()
	select {
	case <-vm.done:
		return vm.err
	case <-time.After(timeout):
		vm.t.Fatalf("qemu still running after %s", timeout)
		return nil
	}
}

// Lines returns a copy of every console line so far.
func (vm *VM) Lines() []string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]string(nil), vm.lines...)
}
