package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/logfile"
	"github.com/keel-os/keel/pkg/supervisor"
)

// fakePID1 answers the control socket's requests as PID 1 does, from a
// status it keeps, and records what it was asked.
type fakePID1 struct {
	mu   sync.Mutex
	st   supervisor.Status
	reqs []supervisor.Request
}

func (f *fakePID1) handle(req supervisor.Request) supervisor.Response {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if req.Op == "status" {
		st := f.st
		return supervisor.Response{Status: &st}
	}
	var svc *supervisor.ServiceStatus
	for i := range f.st.Services {
		if f.st.Services[i].Name == req.Name {
			svc = &f.st.Services[i]
		}
	}
	if svc == nil {
		return supervisor.Response{Error: fmt.Sprintf("%q: no such service", req.Name)}
	}
	switch req.Op {
	case "start", "restart":
		svc.State, svc.Pid, svc.StartedAt, svc.WaitingFor = supervisor.StateRunning, 412, f.st.Now, ""
		if svc.Name == "db" { // a new run, a new health monitor
			svc.Health = &supervisor.HealthStatus{State: supervisor.HealthStarting}
		}
	case "stop":
		if svc.State == supervisor.StateStopped {
			return supervisor.Response{Error: fmt.Sprintf("%q is not running", req.Name)}
		}
		svc.State, svc.Pid, svc.Health = supervisor.StateStopped, 0, nil // as PID 1: no run, no health
	default:
		return supervisor.Response{Error: fmt.Sprintf("unknown request %q", req.Op)}
	}
	st := f.st
	return supervisor.Response{Status: &st}
}

func (f *fakePID1) requests() []supervisor.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]supervisor.Request(nil), f.reqs...)
}

// serve runs f on a unix socket, speaking the control socket's JSON: one
// request a connection.
func (f *fakePID1) serve(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "status.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				var req supervisor.Request
				if err := json.NewDecoder(conn).Decode(&req); err != nil {
					json.NewEncoder(conn).Encode(supervisor.Response{Error: "bad request: " + err.Error()})
					return
				}
				json.NewEncoder(conn).Encode(f.handle(req))
			})
		}
	})
	return path
}

func newFakePID1() *fakePID1 {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakePID1{st: supervisor.Status{
		Now:        now,
		Containerd: supervisor.ContainerdStatus{Pid: 112},
		Orphans:    3,
		Services: []supervisor.ServiceStatus{
			{UnitStatus: supervisor.UnitStatus{Name: "db", State: supervisor.StateRunning, Pid: 202, Policy: "on-failure", StartedAt: now.Add(-time.Minute),
				Health: &supervisor.HealthStatus{State: supervisor.HealthUnhealthy, FailingStreak: 3, LastCheck: now.Add(-time.Second), LastOutput: "refused\n"}},
				Namespace: "services.linuxkit", Log: "/var/log/db.log"},
			{UnitStatus: supervisor.UnitStatus{Name: "web", State: supervisor.StateWaiting, Policy: "always", WaitingFor: "db (healthy; it is unhealthy)"},
				Namespace: "services.linuxkit", Log: "/var/log/web.log",
				DependsOn: []bundle.Dependency{{Service: "db", Condition: bundle.ConditionHealthy}}},
		},
	}}
}

type keelRun struct {
	code        int
	out, errOut string
}

func runKeel(t *testing.T, socket, logDir string, args ...string) keelRun {
	t.Helper()
	var out, errOut strings.Builder
	k := &keelCmd{stdout: &out, stderr: &errOut, socket: socket, logDir: logDir}
	code := k.run(args)
	return keelRun{code, out.String(), errOut.String()}
}

func TestKeelStatus(t *testing.T) {
	f := newFakePID1()
	sock := f.serve(t)
	r := runKeel(t, sock, "", "status")
	want := `NAME  STATE    PID  RESTARTS  UPTIME  LAST EXIT  POLICY      HEALTH
db    running  202  0         1m0s    -          on-failure  unhealthy
web   waiting  -    0         -       -          always      -
web: waiting for db (healthy; it is unhealthy)
containerd: pid 112, restarts 0; orphans reaped: 3; panics recovered: 0
`
	if r.code != 0 || r.out != want || r.errOut != "" {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", r.code, r.errOut, r.out, want)
	}

	r = runKeel(t, sock, "", "status", "web")
	for _, l := range []string{"state: waiting", "waiting for: db (healthy; it is unhealthy)", "depends on: db (service_healthy)", "log: /var/log/web.log", "health: - (no health check)"} {
		if r.code != 0 || !strings.Contains(r.out, "\n"+l+"\n") {
			t.Errorf("status web: exit %d, no %q in\n%s", r.code, l, r.out)
		}
	}
	r = runKeel(t, sock, "", "status", "db")
	if !strings.Contains(r.out, "\nhealth: unhealthy\nfailing streak: 3\nlast check: 1s ago\ncheck output:\n    refused\n") {
		t.Errorf("status db:\n%s", r.out)
	}

	r = runKeel(t, sock, "", "status", "x")
	if r.code != 1 || r.errOut != "keel: no such service \"x\"\n" || r.out != "" {
		t.Errorf("status x: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
}

func TestKeelStatusJSON(t *testing.T) {
	f := newFakePID1()
	sock := f.serve(t)
	r := runKeel(t, sock, "", "status", "--json")
	var st supervisor.Status
	if err := json.Unmarshal([]byte(r.out), &st); r.code != 0 || err != nil {
		t.Fatalf("exit %d, %v:\n%s", r.code, err, r.out)
	}
	if len(st.Services) != 2 || st.Services[1].WaitingFor != "db (healthy; it is unhealthy)" || st.Containerd.Pid != 112 || !strings.Contains(r.out, "\n  \"services\": [") {
		t.Errorf("status %+v\n%s", st, r.out)
	}
	// The flag after the name too.
	for _, args := range [][]string{{"status", "--json", "db"}, {"status", "db", "-json"}} {
		r = runKeel(t, sock, "", args...)
		var s supervisor.ServiceStatus
		if err := json.Unmarshal([]byte(r.out), &s); r.code != 0 || err != nil {
			t.Fatalf("%q: exit %d, %v:\n%s", args, r.code, err, r.out)
		}
		if s.Name != "db" || s.Health == nil || s.Health.State != supervisor.HealthUnhealthy || s.Log != "/var/log/db.log" {
			t.Errorf("%q: %+v", args, s)
		}
	}
}

func TestKeelStartStopRestart(t *testing.T) {
	f := newFakePID1()
	sock := f.serve(t)
	r := runKeel(t, sock, "", "stop", "db")
	if r.code != 0 || r.out != "db: stopped\n" {
		t.Errorf("stop: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = runKeel(t, sock, "", "stop", "db")
	if r.code != 1 || r.errOut != "keel: \"db\" is not running\n" || r.out != "" {
		t.Errorf("stop again: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = runKeel(t, sock, "", "start", "db")
	if r.code != 0 || r.out != "db: running pid 412, health starting\n" {
		t.Errorf("start: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = runKeel(t, sock, "", "restart", "web")
	if r.code != 0 || r.out != "web: running pid 412\n" {
		t.Errorf("restart: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = runKeel(t, sock, "", "restart", "nope")
	if r.code != 1 || r.errOut != "keel: \"nope\": no such service\n" {
		t.Errorf("restart nope: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	want := []supervisor.Request{{Op: "stop", Name: "db"}, {Op: "stop", Name: "db"}, {Op: "start", Name: "db"}, {Op: "restart", Name: "web"}, {Op: "restart", Name: "nope"}}
	if got := f.requests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	// Without a name, two names, or a bad one: usage, and nothing asked.
	for _, args := range [][]string{{"start"}, {"stop", "a", "b"}, {"restart", "../x"}, {"stop", "-x", "db"}} {
		if r := runKeel(t, sock, "", args...); r.code != 2 || !strings.Contains(r.errOut, "usage: keel status") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.errOut)
		}
	}
	if n := len(f.requests()); n != len(want) {
		t.Errorf("%d requests", n)
	}
}

func TestKeelNoPID1(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status"}, {"stop", "db"}} {
		r := runKeel(t, sock, "", args...)
		if r.code != 1 || !strings.HasPrefix(r.errOut, "keel: ask PID 1: ") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.errOut)
		}
	}
}

func TestKeelUsageText(t *testing.T) {
	r := runKeel(t, "", "", "help")
	if r.code != 0 || r.out != keelUsage {
		t.Errorf("help: exit %d, %q", r.code, r.out)
	}
	for _, cmd := range []string{"keel status [--json] [NAME]", "keel start NAME", "keel stop NAME", "keel restart NAME", "keel logs [-f] [-n N] NAME"} {
		if !strings.Contains(keelUsage, cmd) {
			t.Errorf("usage lacks %q", cmd)
		}
	}
	for _, args := range [][]string{{"status", "a", "b"}, {"status", "--yaml"}, {"logs", "-f"}} {
		if r := runKeel(t, "", "", args...); r.code != 2 || !strings.Contains(r.errOut, "usage: keel status") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.errOut)
		}
	}
}

func TestKeelLogs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "web.log.1"), []byte("1\n2\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "web.log"), []byte("3\n4\n"), 0o600)
	for _, args := range [][]string{{"logs", "web", "-n", "3"}, {"logs", "-n", "3", "web"}, {"logs", "-n=3", "web"}} {
		if r := runKeel(t, "", dir, args...); r.code != 0 || r.out != "2\n3\n4\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.out, r.errOut)
		}
	}
	if r := runKeel(t, "", dir, "logs", "-f", "db"); r.code != 1 || !strings.Contains(r.errOut, `no log for "db"`) {
		t.Errorf("logs -f db: exit %d, stderr %q", r.code, r.errOut)
	}
}

// syncBuilder is a strings.Builder safe for a writer and a reader.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestKeelLogsFollow(t *testing.T) {
	dir := t.TempDir()
	log, err := logfile.Open(filepath.Join(dir, "web.log"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	log.Write([]byte("a\nb\nc\n"))
	var out, errOut syncBuilder
	ctx, cancel := context.WithCancel(context.Background())
	k := &keelCmd{stdout: &out, stderr: &errOut, logDir: dir, ctx: ctx}
	done := make(chan int, 1)
	// Flags on both sides of the name.
	go func() { done <- k.run([]string{"logs", "-n", "2", "web", "-f"}) }()
	waitOutput(t, &out, "b\nc\n")
	log.Write([]byte("d\n"))
	waitOutput(t, &out, "b\nc\nd\n")
	cancel()
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Errorf("exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("keel logs -f did not end with its context")
	}
	if out.String() != "b\nc\nd\n" {
		t.Errorf("stdout %q", out.String())
	}
}

// waitOutput polls for out to be want; the deadline only guards against a
// hang.
func waitOutput(t *testing.T, out *syncBuilder, want string) {
	t.Helper()
	for start := time.Now(); out.String() != want; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("hung: stdout %q, want %q", out.String(), want)
		}
	}
}
