package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pulledLayout pulls ref and describes its one layer's entries, one line
// each: "name type mode uid:gid mtime size".
func pulledLayout(t *testing.T, ref string) []string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("%s: manifest %s with layers %+v, want OCI, one layer", ref, m.MediaType, m.Layers)
	}
	if got := cf.Platform().String(); got != "linux/amd64" {
		t.Errorf("%s: platform %s", ref, got)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %c %04o %d:%d %d %d", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Size))
	}
}

// keel push, through the binary, to an in-process registry: each format
// from a build's outputs (fake ones: the layout is what is checked), pulled
// back; the same files push to the same digest; bad command lines.
func TestCLIPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	out := t.TempDir()
	qcow2 := writeFile(t, filepath.Join(out, "sys-efi.qcow2"), "QFI\xfb fake qcow2")
	writeFile(t, filepath.Join(out, "sys-efi.img"), "raw, not preferred to qcow2")
	writeFile(t, filepath.Join(out, "sys-kernel"), "fake bzImage")
	writeFile(t, filepath.Join(out, "sys-initrd.img"), "fake initrd!")
	writeFile(t, filepath.Join(out, "sys-cmdline"), "console=ttyS0 quiet\n")
	t.Setenv("SOURCE_DATE_EPOCH", "1234")

	pushed := func(r result) string {
		t.Helper()
		last := r.stdout[strings.LastIndex(strings.TrimSuffix(r.stdout, "\n"), "\n")+1:]
		ref, ok := strings.CutPrefix(strings.TrimSpace(last), "pushed ")
		if !ok {
			t.Fatalf("push printed %q", r.stdout)
		}
		return ref
	}

	args := []string{"push", "--format", "containerdisk", "--dir", out, host + "/vm/sys:1", "sys"}
	r := keelRun(t, args...).ok(t, args...)
	if !strings.HasPrefix(r.stdout, "containerdisk "+qcow2+" (qcow2)\n") {
		t.Errorf("push printed %q, want it to name %s", r.stdout, qcow2)
	}
	disk := pushed(r)
	if !strings.HasPrefix(disk, host+"/vm/sys@sha256:") {
		t.Errorf("pushed %s, want %s/vm/sys by digest", disk, host)
	}
	want := []string{"disk/ 5 0555 107:107 1234 0", "disk/disk.qcow2 0 0440 107:107 1234 15"}
	if got := pulledLayout(t, disk); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("containerdisk layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A FILE, by path; the same file and time: the same digest.
	args = []string{"push", "-format=containerdisk", host + "/vm/again:2", qcow2}
	if again := pushed(keelRun(t, args...).ok(t, args...)); strings.TrimPrefix(again, host+"/vm/again") != strings.TrimPrefix(disk, host+"/vm/sys") {
		t.Errorf("the same disk pushed as %s and %s", disk, again)
	}

	args = []string{"push", host + "/vm/kernel:1", "sys", "--dir", out, "--format", "kernelboot"}
	r = keelRun(t, args...).ok(t, args...)
	if want := "kernelPath: /boot/vmlinuz\ninitrdPath: /boot/initrd.img\nkernelArgs: console=ttyS0 quiet\n"; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("kernelboot printed %q, want it to start with %q", r.stdout, want)
	}
	want = []string{"boot/ 5 0555 107:107 1234 0", "boot/initrd.img 0 0444 107:107 1234 12", "boot/vmlinuz 0 0444 107:107 1234 12"}
	if got := pulledLayout(t, pushed(r)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kernelboot layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"push", host + "/vm/x:1", "sys"}, exitUsage, `--format "": want containerdisk or kernelboot`},
		{[]string{"push", "--format", "iso", host + "/vm/x:1", "sys"}, exitUsage, `--format "iso"`},
		{[]string{"push", "--format", "kernelboot", host + "/vm/x:1"}, exitUsage, "want REF and"},
		{[]string{"push", "--format", "containerdisk", "--arch", "mips", host + "/vm/x:1", "sys"}, exitUsage, `--arch "mips"`},
		{[]string{"push", "--format", "containerdisk", "--dir", out, host + "/vm/x:1", "other"}, exitFailure,
			"no disk image other, nor " + filepath.Join(out, "other-efi.qcow2")},
		{[]string{"push", "--format", "kernelboot", host + "/vm/x:1", "sys"}, exitFailure, "kernelboot of sys: stat sys-kernel"},
		{[]string{"push", "--format", "containerdisk", "bad ref!", qcow2}, exitFailure, "invalid image reference"},
	} {
		r := keelRun(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keel %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if r := keelRun(t, "push", "--format", "containerdisk", host+"/vm/x:1", qcow2); r.code != exitFailure || !strings.Contains(r.stderr, "SOURCE_DATE_EPOCH") {
		t.Errorf("a bad SOURCE_DATE_EPOCH: exit %d, %q", r.code, r.stderr)
	}
}
