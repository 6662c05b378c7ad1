package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestActionFor(t *testing.T) {
	for _, tc := range []struct {
		sig  os.Signal
		want string
		ok   bool
	}{
		{unix.SIGTERM, "reboot", true},
		{unix.SIGINT, "reboot", true},
		{unix.SIGUSR1, "halt", true},
		{unix.SIGUSR2, "power-off", true},
		{unix.SIGPWR, "power-off", true},
		{unix.SIGHUP, "", false},
		{unix.SIGQUIT, "", false},
		{syscall.SIGCHLD, "", false},
	} {
		a, ok := ActionFor(tc.sig)
		if ok != tc.ok || ok && a.String() != tc.want {
			t.Errorf("%v: got %v %v, want %q %v", tc.sig, a, ok, tc.want, tc.ok)
		}
	}
	if Halt.rebootCmd() != unix.LINUX_REBOOT_CMD_HALT || PowerOff.rebootCmd() != unix.LINUX_REBOOT_CMD_POWER_OFF || Reboot.rebootCmd() != unix.LINUX_REBOOT_CMD_RESTART {
		t.Error("wrong reboot(2) command")
	}
}

// recorder notes the system calls a fake shutdown makes.
type recorder struct{ calls []string }

func (r *recorder) Unmount(target string) error {
	r.calls = append(r.calls, "umount "+target)
	return nil
}
func (r *recorder) RemountReadOnly(target string) error { return errors.New("unexpected") }

func newTestShutdown(children *fakeChildren, rec *recorder, dieOn unix.Signal, log *strings.Builder) *Shutdown {
	var tab mount.Table
	tab.Record("/proc")
	tab.Record("/var")
	return &Shutdown{
		Reaper: newReaper(children.wait, nil),
		Mounts: &tab,
		Log:    slog.New(slog.NewTextHandler(log, nil)),
		Grace:  200 * time.Millisecond,
		killAll: func(sig unix.Signal) error {
			rec.calls = append(rec.calls, "kill "+unix.SignalName(sig))
			if sig == dieOn || sig == unix.SIGKILL {
				for children.alive > 0 {
					children.exit(1000+children.alive, 0)
				}
			}
			return nil
		},
		sync:      func() { rec.calls = append(rec.calls, "sync") },
		unmounter: rec,
		// /var is PID 1's; the data disk on it was mounted by a
		// container, and goes first.
		mounts: func() ([]*mountinfo.Info, error) {
			return []*mountinfo.Info{{Mountpoint: "/"}, {Mountpoint: "/proc"}, {Mountpoint: "/var"}, {Mountpoint: "/var/lib/data"}}, nil
		},
		reboot: func(cmd int) error {
			rec.calls = append(rec.calls, "reboot "+map[int]string{
				unix.LINUX_REBOOT_CMD_POWER_OFF: "power-off",
				unix.LINUX_REBOOT_CMD_RESTART:   "restart",
				unix.LINUX_REBOOT_CMD_HALT:      "halt"}[cmd])
			return nil
		},
	}
}

func TestShutdownIdleIsQuick(t *testing.T) {
	rec := &recorder{}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{}, rec, unix.SIGTERM, &log)
	if err := s.Run(PowerOff); err != nil {
		t.Fatal(err)
	}
	want := []string{"kill SIGTERM", "sync", "umount /var/lib/data", "umount /var", "umount /proc", "sync", "reboot power-off"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls %q, want %q", rec.calls, want)
	}
	if !strings.Contains(log.String(), "msg=\"shutdown power-off\"") {
		t.Errorf("no shutdown line in log:\n%s", log.String())
	}
}

func TestShutdownTermStopsChildrenEarly(t *testing.T) {
	rec := &recorder{}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{alive: 3}, rec, unix.SIGTERM, &log)
	// Were the grace period waited out, the test would hang.
	s.Grace = time.Hour
	if err := s.Run(Reboot); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rec.calls, "kill SIGKILL") {
		t.Errorf("SIGKILL sent though SIGTERM worked: %q", rec.calls)
	}
	if rec.calls[len(rec.calls)-1] != "reboot restart" {
		t.Errorf("calls %q", rec.calls)
	}
}

func TestShutdownKillsAfterGrace(t *testing.T) {
	rec := &recorder{}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{alive: 2}, rec, unix.SIGKILL, &log)
	start := time.Now()
	if err := s.Run(Halt); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < s.Grace {
		t.Errorf("SIGKILL came after %v, before the %v grace period", d, s.Grace)
	}
	want := []string{"kill SIGTERM", "kill SIGKILL", "sync", "umount /var/lib/data", "umount /var", "umount /proc", "sync", "reboot halt"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls %q, want %q", rec.calls, want)
	}
}

type stopRecorder struct {
	rec  *recorder
	name string
}

func (s stopRecorder) StopServices(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		s.rec.calls = append(s.rec.calls, s.name+" without deadline")
	}
	s.rec.calls = append(s.rec.calls, s.name)
	return nil
}

func (s stopRecorder) Stop(ctx context.Context) error { return s.StopServices(ctx) }

// The whole order: console, onshutdown bundles, services, containerd,
// everything else, sync, unmount, sync, reboot(2).
func TestShutdownOrder(t *testing.T) {
	rec := &recorder{}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{}, rec, unix.SIGTERM, &log)
	s.StopConsole = func() { rec.calls = append(rec.calls, "console") }
	s.Onshutdown = func(ctx context.Context) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > OnshutdownBudget {
			t.Errorf("onshutdown deadline %v %v", dl, ok)
		}
		rec.calls = append(rec.calls, "onshutdown")
	}
	s.Services = stopRecorder{rec, "services"}
	s.Containerd = stopRecorder{rec, "containerd"}
	if err := s.Run(PowerOff); err != nil {
		t.Fatal(err)
	}
	want := []string{"console", "onshutdown", "services", "containerd", "kill SIGTERM", "sync", "umount /var/lib/data", "umount /var", "umount /proc", "sync", "reboot power-off"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls %q\nwant  %q", rec.calls, want)
	}
}

// busyRecorder is a recorder whose unmount of one target is refused.
type busyRecorder struct {
	recorder
	busy string
}

func (b *busyRecorder) Unmount(target string) error {
	b.calls = append(b.calls, "umount "+target)
	if target == b.busy {
		return unix.EBUSY
	}
	return nil
}

func (b *busyRecorder) RemountReadOnly(target string) error {
	b.calls = append(b.calls, "ro "+target)
	return nil
}

// A busy mount is remounted read-only and the log names who holds it.
func TestShutdownNamesBusyMountHolders(t *testing.T) {
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "42", "fd"), 0o755)
	os.WriteFile(filepath.Join(proc, "42", "comm"), []byte("stuck\n"), 0o644)
	os.Symlink("/var/lib/db", filepath.Join(proc, "42", "fd", "5"))
	os.Symlink("/bin/stuck", filepath.Join(proc, "42", "exe"))
	rec := &busyRecorder{busy: "/var"}
	var log strings.Builder
	s := newTestShutdown(&fakeChildren{}, &rec.recorder, unix.SIGTERM, &log)
	s.unmounter = rec
	s.procRoot = proc
	if err := s.Run(Reboot); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rec.calls, "ro /var") {
		t.Errorf("calls %q: /var not remounted read-only", rec.calls)
	}
	if !strings.Contains(log.String(), "/var busy, remounting read-only") || !strings.Contains(log.String(), "42(stuck): fd 5 /var/lib/db") {
		t.Errorf("log does not name the holder:\n%s", log.String())
	}
}
