package supervisor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
)

// At PID 1's shutdown (LeaveAtShutdown) the services are stopped without
// the runtime's `kill` or `delete`, each a program start that costs a
// large part of a second under emulation: signals go to the task's process
// by its pidfd, and the ended tasks and containers are left to the
// power-off. The runtime is the one Services.Runtime names, as PID 1
// sets crun: the shim runs it for create and start.
// The stop itself is unchanged: SIGTERM reaches a service that traps it,
// one that cannot get it is killed, and both exit codes are seen.
func TestServicesStopAtShutdownRunsNoRuntime(t *testing.T) {
	needRoot(t)
	// The runtime, wrapped so that it writes down each command it is given.
	runtime := testRuntime(t)
	wrapDir := t.TempDir()
	calls := filepath.Join(wrapDir, "calls")
	wrapper := filepath.Join(wrapDir, "recording-crun")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + runtime + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	console := bootlog.New(&out)
	log := slog.New(console.Handler(slog.LevelInfo))
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("console:\n%s", out.String())
		}
	})
	cd := startTestContainerd(t, startReaper(t), log)

	root := t.TempDir()
	logDir := filepath.Join(root, "var/log")
	bundles := []bundle.Bundle{
		writeService(t, root, "polite", nil, `trap 'echo got TERM; exit 7' TERM; echo trapped; while true; do sleep 0.1; done`),
		// No trap: as its pid namespace's init, sh never gets SIGTERM.
		writeService(t, root, "stubborn", nil, `echo up; while true; do sleep 1; done`),
	}
	var mounts mount.Table
	t.Cleanup(func() { _ = mounts.UnmountAll(mount.Syscalls{}) })
	s := &Services{Containerd: cd, Preparer: &Preparer{Mounts: &mounts}, Log: log, LogDir: logDir, LeaveAtShutdown: true, Runtime: wrapper}
	ctx := namespaces.WithNamespace(context.Background(), DefaultNamespace)
	// What the power-off leaves is deleted before the test's containerd
	// stops, so that no runc state or cgroup outlives the test.
	t.Cleanup(func() {
		client, _ := cd.Client()
		for _, name := range []string{"polite", "stubborn"} {
			if c, err := client.LoadContainer(ctx, name); err == nil {
				_ = deleteContainer(ctx, c)
			}
		}
	})
	s.Start(context.Background(), bundles)
	// Both run their shells: a signal that comes sooner finds runc's own
	// init, a Go program that a SIGTERM ends with exit 2.
	waitFor(t, time.Minute, "polite to set its trap and stubborn to run", func() bool {
		p, _ := os.ReadFile(filepath.Join(logDir, "polite.log"))
		s, _ := os.ReadFile(filepath.Join(logDir, "stubborn.log"))
		return strings.Contains(string(p), "trapped\n") && strings.Contains(string(s), "up\n")
	})
	before, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("the recording runtime was not used: %v", err)
	}
	// The shim ran the runtime it was given for both tasks.
	for _, name := range []string{"polite", "stubborn"} {
		for _, cmd := range []string{"create", "start"} {
			if !hasCall(string(before), cmd, name) {
				t.Errorf("no %s of %s by the given runtime; it ran:\n%s", cmd, name, before)
			}
		}
	}

	if err := s.StopServices(context.Background()); err != nil {
		t.Error(err)
	}
	console.Flush(time.Minute)

	if st := serviceStatus(s, "polite"); st.State != StateStopped || st.LastExit != 7 {
		t.Errorf("polite: %+v, want stopped with exit 7 (its TERM trap)", st)
	}
	if b, _ := os.ReadFile(filepath.Join(logDir, "polite.log")); !strings.Contains(string(b), "got TERM\n") {
		t.Errorf("polite.log lacks its SIGTERM line: %q", b)
	}
	if st := serviceStatus(s, "stubborn"); st.State != StateStopped || st.LastExit != 128+9 {
		t.Errorf("stubborn: %+v, want stopped with SIGKILL", st)
	}
	after, _ := os.ReadFile(calls)
	for _, line := range strings.Split(strings.TrimSpace(string(after[len(before):])), "\n") {
		f := strings.Fields(line)
		for _, cmd := range []string{"kill", "delete"} {
			for _, w := range f {
				if w == cmd {
					t.Errorf("the runtime ran at shutdown: %s", line)
				}
			}
		}
	}
	// Left, not deleted: the machine goes down next.
	client, _ := cd.Client()
	for _, name := range []string{"polite", "stubborn"} {
		if _, err := client.LoadContainer(ctx, name); err != nil {
			t.Errorf("%s's container was deleted at shutdown: %v", name, err)
		}
	}
}

// hasCall reports whether a recorded runtime command line is cmd for the
// container id (its last word).
func hasCall(calls, cmd, id string) bool {
	for _, line := range strings.Split(calls, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == id && slices.Contains(f, cmd) {
			return true
		}
	}
	return false
}
