package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// versions are the pinned versions of tools/versions.env, the one place
// where keel's base images get their versions. The Makefile includes the
// same file, so it stays plain KEY=VALUE lines and # comments.
type versions struct {
	Keel       string // KEEL_VERSION: the tag of keel/init
	KernelABI  string // KERNEL_ABI: Debian's kernel ABI, e.g. 6.1.0-56
	Containerd string // CONTAINERD_VERSION: a containerd/v2 module version
	Runc       string // RUNC_VERSION: a runc module version
	Crun       string // CRUN_VERSION: upstream version of Debian's crun source
	CrunSHA256 string // CRUN_SHA256: sha256 of crun_<CRUN_VERSION>.orig.tar.gz
	BusyboxTag string // BUSYBOX_TAG: the tag of keel/busybox
	// SYSTEMD_BOOT_VERSION and SYSLINUX_VERSION: upstream versions of
	// Debian's systemd-boot-efi and isolinux/syslinux-common, keel/boot's tag.
	SystemdBoot string
	Syslinux    string
}

// readVersions parses a versions file. Every key keel knows must be set;
// an unknown key is an error too, as it is most likely a typo.
func readVersions(path string) (*versions, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	defer f.Close()

	v := &versions{}
	fields := map[string]*string{
		"KEEL_VERSION":         &v.Keel,
		"KERNEL_ABI":           &v.KernelABI,
		"CONTAINERD_VERSION":   &v.Containerd,
		"RUNC_VERSION":         &v.Runc,
		"CRUN_VERSION":         &v.Crun,
		"CRUN_SHA256":          &v.CrunSHA256,
		"BUSYBOX_TAG":          &v.BusyboxTag,
		"SYSTEMD_BOOT_VERSION": &v.SystemdBoot,
		"SYSLINUX_VERSION":     &v.Syslinux,
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || value == "" {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		dst, known := fields[key]
		if !known {
			return nil, fmt.Errorf("%s:%d: unknown key %s", path, n, key)
		}
		*dst = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read versions %s: %w", path, err)
	}
	for _, key := range []string{"KEEL_VERSION", "KERNEL_ABI", "CONTAINERD_VERSION", "RUNC_VERSION", "CRUN_VERSION", "CRUN_SHA256", "BUSYBOX_TAG", "SYSTEMD_BOOT_VERSION", "SYSLINUX_VERSION"} {
		if *fields[key] == "" {
			return nil, fmt.Errorf("%s: %s is not set", path, key)
		}
	}
	return v, nil
}
