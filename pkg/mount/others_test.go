package mount

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// A mountinfo as PID 1 sees it at shutdown: its own system mounts, a data
// disk an onboot container mounted with shared propagation, a tmpfs over
// it, and a stack of two mounts on one point.
const shutdownMountinfo = `21 1 0:2 / / rw - rootfs rootfs rw
22 21 0:20 / /proc rw - proc proc rw
23 21 0:21 / /sys rw - sysfs sysfs rw
24 23 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
25 21 0:5 / /dev rw - devtmpfs devtmpfs rw
26 21 0:23 / /var rw - tmpfs tmpfs rw
40 26 254:0 / /var/lib/data rw - ext4 /dev/vda rw
41 40 0:30 / /var/lib/data/cache rw - tmpfs tmpfs rw
42 26 0:31 / /var/spool rw - tmpfs tmpfs rw
43 42 0:32 / /var/spool rw - tmpfs tmpfs rw
44 21 0:33 / /mnt rw - tmpfs tmpfs rw
`

func TestOthersDeepestFirstSkippingRecorded(t *testing.T) {
	mounts, err := mountinfo.GetMountsFromReader(strings.NewReader(shutdownMountinfo), nil)
	if err != nil {
		t.Fatal(err)
	}
	var tab Table
	for _, m := range []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev", "/var"} {
		tab.Record(m)
	}
	got := tab.Others(mounts, "/")
	want := []string{"/var/lib/data/cache", "/var/lib/data", "/var/spool", "/var/spool", "/mnt"}
	if !slices.Equal(got, want) {
		t.Errorf("Others = %q, want %q", got, want)
	}
	if got := tab.Others(mounts, "/var/lib"); !slices.Equal(got, want[:2]) {
		t.Errorf("Others under /var/lib = %q, want %q", got, want[:2])
	}
}

func TestUnmountOthersFallsBackToReadOnly(t *testing.T) {
	u := &fakeUnmounter{results: map[string]error{"/var/lib/data": unix.EBUSY}}
	if err := unmountEach(u, []string{"/var/lib/data/cache", "/var/lib/data"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"umount /var/lib/data/cache", "umount /var/lib/data", "ro /var/lib/data"}
	if !slices.Equal(u.calls, want) {
		t.Errorf("calls %q, want %q", u.calls, want)
	}
}
