package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/logfile"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/keel-os/keel/pkg/testenv"
	"golang.org/x/sys/unix"
)

// containerdTools finds the containerd and shim (PID 1's binary, which
// is them too, as keel/init ships it: the last one `make images` built,
// under their names) and the runc that `make images` builds, or skips.
func containerdTools(t *testing.T) (containerdDir, runcDir string) {
	t.Helper()
	cache := toolsCache()
	v := pinnedVersions(t)
	containerdDir = filepath.Join(cache, "keel-init")
	runcDir = filepath.Join(cache, "runc-"+v["RUNC_VERSION"])
	for _, f := range []string{
		filepath.Join(containerdDir, "containerd"),
		filepath.Join(containerdDir, "containerd-shim-runc-v2"),
		filepath.Join(runcDir, "runc"),
	} {
		testenv.File(t, f, "containerd and runc as `make images` builds them")
	}
	return containerdDir, runcDir
}

// testRuntime is the services' OCI runtime: crun, as keel/init ships it
// and `make images` builds it into the tools cache, when the host's
// cgroups are v2 only, as a keel guest's are. crun refuses to create a
// container on a host with v1 hierarchies ("cgroups in hybrid mode not
// supported"), so there the tests run the shim's default, runc, which
// containerdTools puts on containerd's PATH; the boot tests run crun.
func testRuntime(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		why := fmt.Sprintf("statfs type %#x", st.Type)
		if err != nil {
			why = err.Error()
		}
		t.Logf("services run under runc: crun needs cgroup v2 alone at /sys/fs/cgroup (%s)", why)
		return filepath.Join(toolsCache(), "runc-"+pinnedVersions(t)["RUNC_VERSION"], "runc")
	}
	v := pinnedVersions(t)
	p := filepath.Join(toolsCache(), "crun-"+v["CRUN_VERSION"], "crun")
	return testenv.File(t, p, "crun as `make images` builds it")
}

// toolsCache is where `make images` keeps the tools it builds.
func toolsCache() string {
	if c := os.Getenv("KEEL_CACHE"); c != "" {
		return filepath.Join(c, "tools")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache/keel/tools")
}

// pinnedVersions reads tools/versions.env, the KEY=VALUE file the Makefile
// includes and tools/mkimages reads, so the tools looked for are the ones
// `make images` builds. It fails when the file or a version is missing.
func pinnedVersions(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "tools", "versions.env"))
	if err != nil {
		t.Fatalf("pinned versions: %v", err)
	}
	v := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("tools/versions.env:%d: %q is not KEY=VALUE", i+1, line)
		}
		v[strings.TrimSpace(key)] = strings.TrimSpace(value)
	}
	for _, k := range []string{"CONTAINERD_VERSION", "RUNC_VERSION", "CRUN_VERSION"} {
		if v[k] == "" {
			t.Fatalf("tools/versions.env: no %s", k)
		}
	}
	return v
}

// startTestContainerd runs a private containerd in a temporary root, state
// and socket (never the host's).
func startTestContainerd(t *testing.T, reaper *Reaper, log *slog.Logger) *Containerd {
	t.Helper()
	cdDir, runcDir := containerdTools(t)
	dir, err := os.MkdirTemp("/tmp", "keel-cd-") // short: sockets have a 108-byte limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cd := &Containerd{
		Reaper:  reaper,
		Log:     log,
		Binary:  filepath.Join(cdDir, "containerd"),
		Address: filepath.Join(dir, "containerd.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Config:  filepath.Join(dir, "config.toml"),
		LogPath: filepath.Join(dir, "containerd.log"),
		Env:     append(os.Environ(), "PATH="+cdDir+":"+runcDir+":"+os.Getenv("PATH")),
	}
	if err := cd.Start(context.Background()); err != nil {
		b, _ := os.ReadFile(cd.LogPath)
		t.Fatalf("%v\ncontainerd.log:\n%s", err, b)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cd.Stop(ctx); err != nil {
			t.Error(err)
		}
		killLeftovers(t, dir)
	})
	return cd
}

// killLeftovers kills whatever still runs with dir on its command line: a
// shim that outlived this test's containerd. The test binary is a child
// subreaper (see startReaper), so a leaked shim would become its child and
// break later tests that wait until the binary has no children left.
func killLeftovers(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		t.Logf("killing pid %d left behind by the test containerd: %s", pid, strings.ReplaceAll(string(b), "\x00", " "))
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

func writeService(t *testing.T, root, name string, rt *bundle.Runtime, script string) bundle.Bundle {
	t.Helper()
	dir := filepath.Join(root, bundle.ServicesDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	busyboxRootfs(t, dir)
	spec := linuxkitSpec("/bin/sh", "-c", script)
	spec.Linux.CgroupsPath = "/keel-test/" + name
	b, err := bundle.MarshalConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if rt != nil {
		b, err := bundle.MarshalRuntime(rt)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, bundle.RuntimeFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bundle.Bundle{Kind: bundle.Service, Name: name, Path: dir}
}

func serviceStatus(s *Services, name string) ServiceStatus {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return ServiceStatus{}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServicesUnderContainerd runs services under a real containerd: logs,
// restart on kill, backoff of a crash loop, the on-failure and never
// policies, survival of a containerd restart, and a parallel stop with
// SIGTERM then SIGKILL after the grace period.
func TestServicesUnderContainerd(t *testing.T) {
	needRoot(t)
	var out syncBuffer
	console := bootlog.New(&out)
	log := slog.New(console.Handler(slog.LevelInfo))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console:\n%s", out.String())
		}
	})
	reaper := startReaper(t)
	cd := startTestContainerd(t, reaper, log)

	root := t.TempDir()
	logDir := filepath.Join(root, "var/log")
	bundles := []bundle.Bundle{
		writeService(t, root, "chatty", nil,
			`trap 'echo got TERM; exit 0' TERM; i=0; while true; do i=$((i+1)); echo line $i; echo err $i >&2; sleep 0.05; done`),
		writeService(t, root, "crasher", &bundle.Runtime{Restart: "always"}, `echo crashing; exit 3`),
		writeService(t, root, "done", nil, `echo finished`),
		writeService(t, root, "never", &bundle.Runtime{Restart: "never"}, `exit 5`),
		// No trap: as its pid namespace's init, sh never gets SIGTERM.
		writeService(t, root, "stubborn", &bundle.Runtime{StopGracePeriod: "500ms", Namespace: "keel-test-other"},
			`while true; do sleep 1; done`),
		// As fast as a shell can write, with a counter on a file.
		writeService(t, root, "flood", &bundle.Runtime{StopGracePeriod: "200ms"},
			`i=0; while true; do i=$((i+1)); echo "flood line $i with some padding to make it longer"; echo $i > /tmp/count; done`),
		writeService(t, root, "netbound", &bundle.Runtime{BindNS: bundle.Namespaces{Net: filepath.Join(root, "netns/netbound")}},
			`trap 'exit 0' TERM; while true; do sleep 1; done`),
	}
	var mounts mount.Table
	t.Cleanup(func() {
		if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
			t.Error(err)
		}
	})
	s := &Services{
		Containerd: cd,
		Preparer:   &Preparer{Mounts: &mounts},
		Log:        log,
		LogDir:     logDir,
		Backoff:    Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Reset: 10 * time.Second},
		Runtime:    testRuntime(t),
	}
	// Logs bounded as PID 1 does it, with a small bound.
	const logLimit = 64 << 10
	s.LogMax = logLimit
	start := time.Now()
	s.Start(context.Background(), bundles)
	t.Logf("services started in %v", time.Since(start))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.StopServices(context.Background())
		}
	})

	if st := serviceStatus(s, "chatty"); st.State != StateRunning || st.Pid == 0 {
		t.Fatalf("chatty after start: %+v", st)
	}
	// Both streams go to the log, and a plain containerd client sees the
	// task in the services namespace.
	waitFor(t, time.Minute, "chatty's log", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "chatty.log"))
		return strings.Contains(string(b), "line 3\n") && strings.Contains(string(b), "err 3\n")
	})
	client, _ := cd.Client()
	ctx := namespaces.WithNamespace(context.Background(), DefaultNamespace)
	if c, err := client.LoadContainer(ctx, "chatty"); err != nil {
		t.Errorf("chatty not in namespace %s: %v", DefaultNamespace, err)
	} else if task, err := c.Task(ctx, nil); err != nil {
		t.Errorf("chatty has no task: %v", err)
	} else if st, err := task.Status(ctx); err != nil || st.Status != "running" {
		t.Errorf("chatty task status %v %v", st, err)
	}
	if st := serviceStatus(s, "stubborn"); st.Namespace != "keel-test-other" {
		t.Errorf("stubborn's namespace: %+v", st)
	}
	// keel's config leaves out the gRPC metrics, which nothing reads.
	if resp, err := client.IntrospectionService().Plugins(ctx, "type==io.containerd.metrics.v1"); err != nil {
		t.Errorf("introspection: %v", err)
	} else {
		for _, p := range resp.Plugins {
			if p.InitErr == nil {
				t.Errorf("metrics plugin %s loaded", p.ID)
			}
		}
	}
	// Only keel's one lease per namespace is left, however many creates
	// (crasher has been created several times by now); that each create
	// carries it, TestServiceCreatesCarryKeelsLease sees on the wire.
	waitFor(t, time.Minute, "crasher's restart", func() bool { return serviceStatus(s, "crasher").Restarts >= 1 })
	for _, ns := range []string{DefaultNamespace, "keel-test-other"} {
		ls, err := client.LeasesService().List(namespaces.WithNamespace(context.Background(), ns))
		var ids []string
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		if err != nil || len(ids) != 1 || ids[0] != ServiceLease {
			t.Errorf("leases in namespace %s: %v %v; want just %s", ns, ids, err, ServiceLease)
		}
	}
	// runtime.json's bindNS: the task's network namespace is bound before
	// it runs.
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Join(root, "netns/netbound"), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		t.Errorf("bindNS net: statfs %v, type %#x", err, fs.Type)
	}

	// on-failure after a clean exit, and never: not restarted.
	waitFor(t, time.Minute, "done and never to exit", func() bool {
		return serviceStatus(s, "done").State == StateExited && serviceStatus(s, "never").State == StateExited
	})
	if st := serviceStatus(s, "never"); st.LastExit != 5 || st.Restarts != 0 {
		t.Errorf("never: %+v", st)
	}
	if st := serviceStatus(s, "done"); st.LastExit != 0 || st.Restarts != 0 {
		t.Errorf("done: %+v", st)
	}

	// A killed service comes back with a new pid.
	old := serviceStatus(s, "chatty")
	if err := unix.Kill(int(old.Pid), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "chatty to restart", func() bool {
		st := serviceStatus(s, "chatty")
		return st.State == StateRunning && st.Restarts == 1 && st.Pid != old.Pid
	})
	if st := serviceStatus(s, "chatty"); st.LastExit != 128+9 {
		t.Errorf("chatty's last exit %d, want 137", st.LastExit)
	}

	// The crash loop backs off (50ms, doubling up to 400ms): it shows as
	// crash-looping after a few restarts, and it is restarted a handful of
	// times, not hundreds.
	waitFor(t, time.Minute, "crasher to crash-loop", func() bool {
		st := serviceStatus(s, "crasher")
		return st.Restarts >= 3 && st.State == StateCrashLoop
	})
	time.Sleep(time.Second)
	cr := serviceStatus(s, "crasher")
	if max := 3 + int(time.Since(start)/(400*time.Millisecond)) + 1; cr.Restarts > max {
		t.Errorf("crasher restarted %d times in %v; the backoff allows %d", cr.Restarts, time.Since(start), max)
	}
	if cr.State != StateCrashLoop && cr.State != StateStarting && cr.State != StateRunning {
		t.Errorf("crasher state %q, want crashloop", cr.State)
	}
	if b, _ := os.ReadFile(filepath.Join(logDir, "crasher.log")); strings.Count(string(b), "crashing\n") < 3 {
		t.Errorf("crasher.log: %q", b)
	}

	// containerd dies: it is restarted and the running services are still
	// tracked (same pid, and a later kill is still noticed).
	before := serviceStatus(s, "chatty")
	cdPid := cd.Status().Pid
	if err := unix.Kill(cdPid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "containerd to restart", func() bool { st := cd.Status(); return st.Restarts == 1 && st.Pid != 0 && st.Pid != cdPid })
	waitFor(t, time.Minute, "chatty to be re-attached", func() bool {
		return strings.Contains(out.String(), "service chatty re-attached")
	})
	if st := serviceStatus(s, "chatty"); st.Pid != before.Pid || st.State != StateRunning || st.Restarts != before.Restarts {
		t.Errorf("chatty after containerd restart: %+v, before %+v", st, before)
	}
	if err := unix.Kill(int(before.Pid), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "chatty to restart after containerd's restart", func() bool {
		st := serviceStatus(s, "chatty")
		return st.State == StateRunning && st.Restarts == before.Restarts+1
	})

	// The flooding service is never blocked by its log, and its log stays
	// bounded: the shim writes to a file, PID 1 rotates it.
	floodLog := filepath.Join(logDir, "flood.log")
	var sizes []int64
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		var total int64
		for _, p := range []string{floodLog, floodLog + ".1"} {
			if fi, err := os.Stat(p); err == nil {
				total += fi.Size()
			}
		}
		sizes = append(sizes, total)
	}
	if _, err := os.Stat(floodLog + ".1"); err != nil {
		t.Errorf("flood.log never rotated: %v", err)
	}
	for _, n := range sizes {
		// The bound, the rotated copy, and what a fast writer adds
		// between two checks.
		if n > 2*logLimit+4<<20 {
			t.Errorf("flood's logs hold %d bytes (bound %d); sizes %v", n, logLimit, sizes)
			break
		}
	}
	if st := serviceStatus(s, "flood"); st.State != StateRunning || st.Restarts != 0 {
		t.Errorf("flood: %+v", st)
	}
	b, _ := logfile.Tail(floodLog, 2)
	t.Logf("flood's logs: %v bytes over 0.5s; tail %q", sizes, b)

	// Its third run has set its trap (a shell as its namespace's init
	// ignores SIGTERM until then).
	waitFor(t, time.Minute, "chatty's third run to log", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "chatty.log"))
		return strings.Count(string(b), "line 2\n") >= 3
	})

	// Stop: in parallel, chatty on SIGTERM at once; stubborn, its pid
	// namespace's init with no handler, cannot get SIGTERM and is killed
	// at once rather than after its grace period.
	if err := s.StopServices(context.Background()); err != nil {
		t.Error(err)
	}
	stopped = true
	console.Flush(time.Minute)
	if !strings.Contains(out.String(), "service stubborn cannot get SIGTERM") {
		t.Errorf("stubborn was not killed at once as a namespace init without a TERM handler:\n%s", out.String())
	}
	for _, name := range []string{"chatty", "crasher", "stubborn", "done", "flood", "netbound"} {
		if st := serviceStatus(s, name); st.State != StateStopped && st.State != StateExited {
			t.Errorf("%s after stop: %+v", name, st)
		}
	}
	if st := serviceStatus(s, "chatty"); st.LastExit != 0 {
		t.Errorf("chatty did not exit 0 on SIGTERM: %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(logDir, "chatty.log")); !strings.Contains(string(b), "got TERM") {
		t.Errorf("chatty.log lacks its SIGTERM line")
	}
	if st := serviceStatus(s, "stubborn"); st.LastExit != 128+9 {
		t.Errorf("stubborn: %+v, want killed", st)
	}
	if containers, err := client.Containers(ctx); err == nil && len(containers) != 0 {
		// client may be stale after the restart; ask the current one.
		c2, _ := cd.Client()
		if cs, err := c2.Containers(ctx); err != nil || len(cs) != 0 {
			t.Errorf("containers left after stop: %v %v", cs, err)
		}
	}
	if testing.Verbose() {
		t.Logf("console:\n%s", out.String())
	}
}

// A shutdown that comes while the services are still being created stops
// them all, promptly, and leaves no task behind, whenever it comes.
func TestServicesStopDuringStart(t *testing.T) {
	needRoot(t)
	var out syncBuffer
	log := slog.New(bootlog.New(&out).Handler(slog.LevelInfo))
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("console:\n%s", out.String())
		}
	})
	cd := startTestContainerd(t, startReaper(t), log)
	for _, after := range []time.Duration{0, 60 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		root := t.TempDir()
		var bundles []bundle.Bundle
		for _, name := range []string{"a", "b", "c", "d"} {
			bundles = append(bundles, writeService(t, root, name, &bundle.Runtime{StopGracePeriod: "300ms"}, `while true; do sleep 1; done`))
		}
		var mounts mount.Table
		t.Cleanup(func() { _ = mounts.UnmountAll(mount.Syscalls{}) })
		s := &Services{Containerd: cd, Preparer: &Preparer{Mounts: &mounts}, Log: log, LogDir: filepath.Join(root, "var/log"), Runtime: testRuntime(t)}
		started := make(chan struct{})
		go func() {
			s.Start(context.Background(), bundles)
			close(started)
		}()
		time.Sleep(after)
		if err := s.StopServices(context.Background()); err != nil {
			t.Errorf("stop after %v: %v", after, err)
		}
		select {
		case <-started:
		case <-time.After(time.Minute): // a hang, not a speed check
			t.Fatalf("stop after %v: Start did not return", after)
		}
		s.wait()
		for _, st := range s.Status() {
			if st.State != StateStopped {
				t.Errorf("stop after %v: %s: %+v", after, st.Name, st)
			}
		}
		client, _ := cd.Client()
		ctx := namespaces.WithNamespace(context.Background(), DefaultNamespace)
		if cs, err := client.Containers(ctx); err != nil || len(cs) != 0 {
			var ids []string
			for _, c := range cs {
				ids = append(ids, c.ID())
			}
			t.Errorf("stop after %v: containers left: %v %v", after, ids, err)
		}
	}
}
