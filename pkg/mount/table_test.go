package mount

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type fakeUnmounter struct {
	results map[string]error // Unmount result per target; nil if absent
	roFail  map[string]error
	calls   []string
}

func (f *fakeUnmounter) Unmount(target string) error {
	f.calls = append(f.calls, "umount "+target)
	return f.results[target]
}

func (f *fakeUnmounter) RemountReadOnly(target string) error {
	f.calls = append(f.calls, "ro "+target)
	return f.roFail[target]
}

func TestUnmountAllReverseOrderWithFallbacks(t *testing.T) {
	var tab Table
	for _, m := range []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/pts", "/var", "/containers/onboot/000-a/rootfs"} {
		tab.Record(m)
	}
	u := &fakeUnmounter{
		results: map[string]error{
			"/var":  unix.EBUSY,  // busy: falls back to read-only
			"/dev":  unix.EBUSY,  // busy and the fallback fails too
			"/proc": unix.EINVAL, // not mounted any more: fine
			"/sys":  unix.EPERM,
		},
		roFail: map[string]error{"/dev": unix.EACCES},
	}
	err := tab.UnmountAll(u)
	want := []string{
		"umount /containers/onboot/000-a/rootfs",
		"umount /var", "ro /var",
		"umount /dev/pts",
		"umount /dev", "ro /dev",
		"umount /sys/fs/cgroup",
		"umount /sys",
		"umount /proc",
	}
	if !slices.Equal(u.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", u.calls, want)
	}
	if err == nil || !errors.Is(err, unix.EPERM) || !errors.Is(err, unix.EACCES) {
		t.Fatalf("err = %v, want the /sys and /dev failures", err)
	}
	if strings.Contains(err.Error(), "/var") || strings.Contains(err.Error(), "/proc") {
		t.Errorf("err mentions a mount that was dealt with: %v", err)
	}
	if n := len(tab.Targets()); n != 0 {
		t.Errorf("table keeps %d entries after UnmountAll", n)
	}
}
