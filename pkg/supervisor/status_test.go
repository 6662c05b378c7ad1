package supervisor

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testStatus() Status {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Status{
		Now:        now,
		Containerd: ContainerdStatus{Pid: 300, Restarts: 1},
		Orphans:    4,
		Services: []ServiceStatus{
			{UnitStatus: UnitStatus{Name: "httpd", State: StateRunning, Pid: 412, Policy: "on-failure", StartedAt: now.Add(-182 * time.Second)}},
			{UnitStatus: UnitStatus{Name: "flaky", State: StateCrashLoop, CrashLooping: true, Restarts: 7, Policy: "always", LastExit: 1, LastExitAt: now.Add(-4 * time.Second),
				NextStart: now.Add(3 * time.Second)}},
			{UnitStatus: UnitStatus{Name: "killed", State: StateRunning, Pid: 500, Restarts: 1, Policy: "on-failure", StartedAt: now.Add(-26 * time.Hour),
				LastExit: 137, LastExitAt: now.Add(-26 * time.Hour)}},
			{UnitStatus: UnitStatus{Name: "slow", State: StateStarting, CrashLooping: true, Restarts: 3, Policy: "always", LastExit: 2, LastExitAt: now.Add(-2 * time.Second)}},
			{UnitStatus: UnitStatus{Name: "broken", State: StateFailed, Policy: "on-failure", Error: "read bundle file: no such file"}},
		},
	}
}

func TestWriteStatusTable(t *testing.T) {
	st := testStatus()
	var b strings.Builder
	if err := WriteStatusTable(&b, &st); err != nil {
		t.Fatal(err)
	}
	want := `NAME    STATE                  PID  RESTARTS  UPTIME  LAST EXIT                POLICY
httpd   running                412  0         3m2s    -                        on-failure
flaky   crashloop, next in 3s  -    7         -       1 (4s ago)               always
killed  running                500  1         26h0m   137/SIGKILL (26h0m ago)  on-failure
slow    crashloop, starting    -    3         -       2 (2s ago)               always
broken  failed                 -    0         -       -                        on-failure
broken: read bundle file: no such file
containerd: pid 300, restarts 1; orphans reaped: 4; panics recovered: 0
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestStatusSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := serveControl(ctx, slog.New(slog.DiscardHandler), path, func(Request) Response { st := testStatus(); return Response{Status: &st} }); err != nil {
		t.Fatal(err)
	}
	st, err := FetchStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 5 || st.Services[1].Name != "flaky" || st.Services[1].Restarts != 7 || !st.Now.Equal(testStatus().Now) {
		t.Errorf("status %+v", st)
	}
}
