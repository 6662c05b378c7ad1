package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// makeDeb builds a .deb in memory the way dpkg-deb lays one out: an ar
// archive of debian-binary, control.tar.xz and data.tar<ext>.
func makeDeb(t *testing.T, ext string, files map[string]string) []byte {
	t.Helper()
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	// dpkg would create this symlink; keel skips anything but files.
	tw.WriteHeader(&tar.Header{Name: "./bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	var member bytes.Buffer
	switch ext {
	case ".xz":
		w, err := xz.NewWriter(&member)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data.Bytes())
		w.Close()
	case ".zst":
		w, _ := zstd.NewWriter(&member)
		w.Write(data.Bytes())
		w.Close()
	case "":
		member = data
	default:
		t.Fatalf("no fixture for %q", ext)
	}

	var deb bytes.Buffer
	deb.WriteString(arMagic)
	for _, m := range []struct {
		name string
		data []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar.xz", []byte("odd")}, // odd size: tests the padding
		{"data.tar" + ext, member.Bytes()},
	} {
		fmt.Fprintf(&deb, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.data))
		deb.Write(m.data)
		if len(m.data)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	return deb.Bytes()
}

func TestExtractDeb(t *testing.T) {
	for _, ext := range []string{".xz", ".zst", ""} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			dir := t.TempDir()
			deb := filepath.Join(dir, "busybox-static_1.35.0-4_amd64.deb")
			files := map[string]string{"bin/busybox": "#!busybox", "usr/share/doc/x": "doc"}
			if err := os.WriteFile(deb, makeDeb(t, ext, files), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			keep := func(n string) bool { return n == "bin" || strings.HasPrefix(n, "bin/") }
			if err := extractDeb(deb, out, keep); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(out, "bin", "busybox"))
			if err != nil || string(b) != "#!busybox" {
				t.Errorf("bin/busybox = %q, %v", b, err)
			}
			if st, err := os.Stat(filepath.Join(out, "bin", "busybox")); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("bin/busybox mode: %v, %v", st, err)
			}
			if _, err := os.Lstat(filepath.Join(out, "usr")); !os.IsNotExist(err) {
				t.Errorf("unwanted usr/ extracted: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(out, "bin", "sh")); !os.IsNotExist(err) {
				t.Errorf("symlink extracted: %v", err)
			}
		})
	}
}

func TestExtractDebNotADeb(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.deb")
	os.WriteFile(p, []byte("just text"), 0o644)
	if err := extractDeb(p, t.TempDir(), func(string) bool { return true }); err == nil || !strings.Contains(err.Error(), "not a Debian package") {
		t.Errorf("err = %v", err)
	}
}

func TestParseControlAndVersion(t *testing.T) {
	f := parseControl([]byte("Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nDescription: x\n more\nFilename: pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb\n\nPackage: other\n"))
	if f["Filename"] != "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb" {
		t.Errorf("Filename = %q", f["Filename"])
	}
	p := debPackage{Version: f["Version"]}
	if got := p.UpstreamVersion(); got != "1.35.0" {
		t.Errorf("UpstreamVersion = %q", got)
	}
}

func TestReadVersions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "versions.env")
	good := "# comment\nKEEL_VERSION=0.1.0\n\nKERNEL_ABI=6.1.0-56\nCONTAINERD_VERSION=v2.4.2\nRUNC_VERSION=v1.5.3\nCRUN_VERSION=1.21\nCRUN_SHA256=4bfb\nBUSYBOX_TAG=1.35\nSYSTEMD_BOOT_VERSION=252\nSYSLINUX_VERSION=6.04\n"
	os.WriteFile(p, []byte(good), 0o644)
	v, err := readVersions(p)
	if err != nil {
		t.Fatal(err)
	}
	if *v != (versions{Keel: "0.1.0", KernelABI: "6.1.0-56", Containerd: "v2.4.2", Runc: "v1.5.3", Crun: "1.21", CrunSHA256: "4bfb", BusyboxTag: "1.35", SystemdBoot: "252", Syslinux: "6.04"}) {
		t.Errorf("got %+v", v)
	}
	for bad, want := range map[string]string{
		good + "TYPO=1\n": ":12: unknown key TYPO",
		strings.Replace(good, "RUNC_VERSION=v1.5.3\n", "", 1): "RUNC_VERSION is not set",
		strings.Replace(good, "CRUN_SHA256=4bfb\n", "", 1):    "CRUN_SHA256 is not set",
		good + "BUSYBOX_TAG\n":                                ":12: want KEY=VALUE",
	} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := readVersions(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}
