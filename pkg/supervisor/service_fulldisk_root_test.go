package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A service whose log directory is full keeps running: its output is
// dropped, not left in the pipe. With the shim writing the log itself
// (cio.LogFile, as before), the shim's copy stopped at ENOSPC, and the
// service blocked on its next write once the pipe's 64 KiB were full.
func TestServiceOutputOnAFullDisk(t *testing.T) {
	needRoot(t)
	var out syncBuffer
	console := bootlog.New(&out)
	log := slog.New(console.Handler(slog.LevelInfo))
	cd := startTestContainerd(t, startReaper(t), log)

	root := t.TempDir()
	logDir := filepath.Join(root, "var/log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", logDir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount a small tmpfs for the logs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(logDir, unix.MNT_DETACH) })
	outDir := filepath.Join(root, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// 2 KiB lines, and a counter in a directory of the host's that is not
	// full, so that progress shows without the log.
	b := writeService(t, root, "chatty", nil, `s=x; for k in 1 2 3 4 5 6 7 8 9 10 11; do s=$s$s; done
i=0; while true; do i=$((i+1)); echo $i > /out/count.tmp; mv /out/count.tmp /out/count; echo $s; done`)
	spec, err := bundle.ReadConfig(b.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/out", Type: "bind", Source: outDir, Options: []string{"rbind", "rw"}})
	// The rootfs is read-only: mv needs /bin/mv, which busyboxRootfs has not.
	if err := os.Symlink("busybox", filepath.Join(b.Path, "rootfs/bin/mv")); err != nil {
		t.Fatal(err)
	}
	cfg, err := bundle.MarshalConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.ConfigPath(), cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	var mounts mount.Table
	t.Cleanup(func() { _ = mounts.UnmountAll(mount.Syscalls{}) })
	s := &Services{Containerd: cd, Preparer: &Preparer{Mounts: &mounts}, Log: log, LogDir: logDir, LogMax: 1 << 30, Runtime: testRuntime(t)}
	s.Start(context.Background(), []bundle.Bundle{b})
	t.Cleanup(func() { _ = s.StopServices(context.Background()) })

	count := func() int {
		b, _ := os.ReadFile(filepath.Join(outDir, "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	var fs unix.Statfs_t
	waitFor(t, time.Minute, "the log directory to fill up", func() bool {
		return unix.Statfs(logDir, &fs) == nil && fs.Bavail == 0
	})
	// Far more than a pipe holds (64 KiB is 32 lines) after the disk
	// filled: the output is drained all along.
	full := count()
	waitFor(t, time.Minute, "the service to go on writing on a full disk", func() bool { return count() > full+1000 })
	if st := serviceStatus(s, "chatty"); st.State != StateRunning {
		t.Errorf("chatty on a full disk: %+v", st)
	}
	t.Logf("lines written: %d when the disk filled, %d now", full, count())
}
