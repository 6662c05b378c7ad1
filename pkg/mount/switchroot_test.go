package mount

import (
	"bufio"
	"strings"
	"testing"
)

func TestRootIsOwnParent(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo string
		want            bool
	}{
		{"initramfs", "1 1 0:2 / / rw - rootfs rootfs rw,size=1000k,nr_inodes=250\n" +
			"20 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n", true},
		{"bound over initramfs", "1 1 0:2 / / rw - rootfs rootfs rw\n" +
			"25 1 0:2 / / rw shared:1 - rootfs rootfs rw\n", false},
		{"tmpfs over initramfs", "1 1 0:2 / / rw - rootfs rootfs rw\n" +
			"25 1 0:25 / / rw shared:1 - tmpfs tmpfs rw,mode=755\n", false},
		{"disk", "29 1 8:1 / / rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rootIsOwnParent(bufio.NewScanner(strings.NewReader(tc.mountinfo)))
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := rootIsOwnParent(bufio.NewScanner(strings.NewReader("20 1 0:20 / /proc rw - proc proc rw\n"))); err == nil {
		t.Error("no error for mountinfo without /")
	}
}

func TestIsInitramfsHere(t *testing.T) {
	// Whatever this machine is, its / is not an initramfs: tests do not run
	// from one.
	got, err := IsInitramfs()
	if err != nil {
		t.Fatal(err)
	}
	if got {
		t.Error("IsInitramfs reported the test machine's / as an initramfs")
	}
}
