package mount

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	o := ParseOptions([]string{"rbind", "ro", "nosuid", "rshared", "mode=0755", "size=10%", "rw", "noexec"})
	if want := uintptr(unix.MS_BIND | unix.MS_REC | unix.MS_NOSUID | unix.MS_NOEXEC); o.Flags != want {
		t.Errorf("flags = %#x, want %#x (rw after ro clears it)", o.Flags, want)
	}
	if !o.Bind() {
		t.Error("rbind not seen as a bind mount")
	}
	if !slices.Equal(o.Propagation, []uintptr{unix.MS_SHARED | unix.MS_REC}) {
		t.Errorf("propagation = %v", o.Propagation)
	}
	if o.Data != "mode=0755,size=10%" {
		t.Errorf("data = %q", o.Data)
	}
}
