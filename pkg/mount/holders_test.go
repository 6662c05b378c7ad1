package mount

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeProc builds a /proc with symlinks that read like the kernel's.
func fakeProc(t *testing.T, procs map[string]map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, files := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range files {
			p := filepath.Join(dir, name)
			var err error
			switch {
			case name == "comm" || name == "maps":
				err = os.WriteFile(p, []byte(v), 0o644)
			default:
				err = os.Symlink(v, p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestHolders(t *testing.T) {
	proc := fakeProc(t, map[string]map[string]string{
		"1": {"comm": "init\n", "cwd": "/", "root": "/", "exe": "/memfd:init (deleted)",
			"fd/0": "/dev/console", "fd/1": "/dev/console", "fd/7": "/var/log/containerd.log"},
		"57": {"comm": "sh\n", "cwd": "/var/lib/data", "root": "/", "exe": "/bin/busybox",
			"fd/0": "/dev/ttyS0", "fd/10": "/var/lib/data/db (deleted)", "fd/2": "socket:[1234]",
			"maps": "00400000-00452000 r-xp 00000000 00:02 123 /bin/busybox\n" +
				"7f0000000000-7f0000001000 r--p 00000000 00:20 9 /var/lib/my lib.so\n" +
				"7f0000001000-7f0000002000 r-xp 00001000 00:20 9 /var/lib/my lib.so\n" +
				"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n"},
		"60":   {"comm": "sleep\n", "cwd": "/variable", "root": "/", "exe": "/bin/sleep"},
		"self": {"cwd": "/var"},
		// A kernel thread: no exe.
		"2": {"comm": "kthreadd\n", "cwd": "/var", "root": "/"},
	})
	got, err := Holders(proc, "/var/")
	if err != nil {
		t.Fatal(err)
	}
	want := []Holder{
		{Pid: 1, Comm: "init", Uses: []string{"fd 7 /var/log/containerd.log"}},
		{Pid: 57, Comm: "sh", Uses: []string{"cwd", "fd 10 /var/lib/data/db (deleted)", "map /var/lib/my lib.so"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if s := got[1].String(); s != "57(sh): cwd, fd 10 /var/lib/data/db (deleted), map /var/lib/my lib.so" {
		t.Errorf("String() = %q", s)
	}
}

type busyUnmounter struct {
	busy  string
	calls []string
}

func (b *busyUnmounter) Unmount(target string) error {
	b.calls = append(b.calls, "umount "+target)
	if target == b.busy {
		return unix.EBUSY
	}
	return nil
}

func (b *busyUnmounter) RemountReadOnly(target string) error {
	b.calls = append(b.calls, "ro "+target)
	return nil
}

func TestUnmountAllNamesHolders(t *testing.T) {
	proc := fakeProc(t, map[string]map[string]string{
		"57": {"comm": "sh\n", "cwd": "/var/tmp", "exe": "/bin/sh"},
	})
	var tab Table
	tab.Record("/proc")
	tab.Record("/var")
	tab.Record("/tmp")
	u := &busyUnmounter{busy: "/var"}
	var named []string
	err := tab.UnmountAll(NamingUnmounter{Unmounter: u, ProcRoot: proc, Busy: func(target string, h []Holder, err error) {
		for _, x := range h {
			named = append(named, target+" "+x.String())
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"umount /tmp", "umount /var", "ro /var", "umount /proc"}; !reflect.DeepEqual(u.calls, want) {
		t.Errorf("calls %q, want %q", u.calls, want)
	}
	if len(named) != 1 || !strings.Contains(named[0], "/var 57(sh): cwd") {
		t.Errorf("named %q", named)
	}
}
