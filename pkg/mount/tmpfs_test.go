package mount

import (
	"errors"
	"strings"
	"testing"
)

func TestTmpfsSize(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		kind TmpfsKind
		mem  uint64
		want uint64
	}{
		{TmpfsVar, 4 * gib, 4 * gib / 100 * 25 &^ 1023},
		{TmpfsRun, 4 * gib, 4 * gib / 100 * 10 &^ 1023},
		{TmpfsTmp, 4 * gib, 4 * gib / 100 * 10 &^ 1023},
		{TmpfsShm, 4 * gib, 4 * gib / 100 * 5 &^ 1023},
		{TmpfsOverlay, 4 * gib, 4 * gib / 100 * 10 &^ 1023},
		{TmpfsShm, 32 << 20, minTmpfs}, // a tiny VM still gets the floor
		{TmpfsVar, 0, 0},               // RAM unknown: no limit of ours
		{"nonesuch", 4 * gib, 0},
	} {
		if got := TmpfsSize(tc.kind, tc.mem); got != tc.want {
			t.Errorf("TmpfsSize(%s, %d) = %d, want %d", tc.kind, tc.mem, got, tc.want)
		}
	}
}

// Together the system tmpfs mounts may never take more than half the RAM,
// whatever the machine: the rest is the kernel's, the root tmpfs's (the
// whole image) and the services'.
func TestSystemTmpfsLeaveHalf(t *testing.T) {
	for _, mem := range []uint64{256 << 20, 1 << 30, 3<<30 + 12345, 64 << 30} {
		var sum uint64
		for _, f := range systemFilesystems {
			sum += TmpfsSize(f.size, mem)
		}
		if sum > mem/2 {
			t.Errorf("MemTotal %d: system tmpfs limits add up to %d, more than half", mem, sum)
		}
	}
}

func TestTmpfsSizeData(t *testing.T) {
	if got, want := tmpfsSizeData(TmpfsRun, 1<<30), "size=104857k"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := tmpfsSizeData(TmpfsRun, 0); got != "" {
		t.Errorf("unknown RAM gave %q, want no option", got)
	}
	if opt := TmpfsSizeOption(TmpfsOverlay); !strings.HasPrefix(opt, "size=") || !strings.HasSuffix(opt, "k") {
		t.Errorf("TmpfsSizeOption(overlay) = %q", opt)
	}
}

// One failed mount must not skip the others, the /dev links or the rshared
// step, and the error must name what failed.
func TestSystemTriesEverything(t *testing.T) {
	var tried []fs
	failing := systemFilesystems[2].target
	links, shared := 0, 0
	var tab Table
	err := tab.system(systemSteps{
		mount: func(f fs) error {
			tried = append(tried, f)
			if len(tried) == 3 {
				return errors.New("planted failure")
			}
			return nil
		},
		devLinks: func() error { links++; return nil },
		share:    func() error { shared++; return nil },
	}, 1<<30)
	if err == nil {
		t.Fatal("System reported no error with a mount failing")
	}
	if !strings.Contains(err.Error(), failing) || !strings.Contains(err.Error(), "planted failure") {
		t.Errorf("error %q does not name %s", err, failing)
	}
	if len(tried) != len(systemFilesystems) {
		t.Errorf("%d of %d mounts tried after the 3rd failed", len(tried), len(systemFilesystems))
	}
	if links != 1 || shared != 1 {
		t.Errorf("devLinks ran %d times, rshared %d, want 1 each", links, shared)
	}
	sized := map[string]bool{}
	for _, f := range tried {
		if strings.Contains(f.data, "size=") {
			sized[f.target] = true
		}
	}
	for _, target := range []string{"/run", "/tmp", "/var", "/dev/shm"} {
		if !sized[target] {
			t.Errorf("%s mounted without a size limit", target)
		}
	}
	if len(sized) != 4 {
		t.Errorf("size= on %v, want only the four tmpfs", sized)
	}
}

// Every failure is returned, not just the first.
func TestSystemJoinsFailures(t *testing.T) {
	var tab Table
	err := tab.system(systemSteps{
		mount: func(f fs) error {
			if f.target == "/proc" || f.target == "/var" {
				return errors.New("refused")
			}
			return nil
		},
		devLinks: func() error { return errors.New("link /dev/ptmx: refused") },
		share:    func() error { return errors.New("make / rshared: refused") },
	}, 1<<30)
	for _, want := range []string{"/proc", "/var", "/dev/ptmx", "make / rshared"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestWithSize(t *testing.T) {
	for _, tc := range []struct {
		f    fs
		want string
	}{
		{fs{data: "mode=0755", size: TmpfsRun}, "mode=0755,size=104857k"},
		{fs{size: TmpfsRun}, "size=104857k"},
		{fs{data: "mode=0755"}, "mode=0755"},
	} {
		if got := tc.f.withSize(1 << 30); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.f, got, tc.want)
		}
	}
}
