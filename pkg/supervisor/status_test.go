package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
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
			{UnitStatus: UnitStatus{Name: "db", State: StateRunning, Pid: 600, Policy: "on-failure", StartedAt: now.Add(-5 * time.Second),
				Health: &HealthStatus{State: HealthStarting, FailingStreak: 2, LastCheck: now.Add(-time.Second), LastOutput: "psql: connection refused\nis the server running?\n"}},
				Namespace: "services.linuxkit", Log: "/var/log/db.log"},
			{UnitStatus: UnitStatus{Name: "web", State: StateRunning, Pid: 700, Policy: "always", StartedAt: now.Add(-time.Minute),
				Health: &HealthStatus{State: HealthHealthy, LastCheck: now.Add(-2 * time.Second)}}},
			{UnitStatus: UnitStatus{Name: "app", State: StateWaiting, Policy: "on-failure", WaitingFor: "db (healthy; it is starting)"},
				Namespace: "services.linuxkit", Log: "/var/log/app.log",
				DependsOn: []bundle.Dependency{{Service: "db", Condition: bundle.ConditionHealthy}, {Service: "web", Condition: bundle.ConditionStarted}}},
		},
	}
}

func TestWriteStatusTable(t *testing.T) {
	st := testStatus()
	var b strings.Builder
	if err := WriteStatusTable(&b, &st); err != nil {
		t.Fatal(err)
	}
	want := `NAME    STATE                  PID  RESTARTS  UPTIME  LAST EXIT                POLICY      HEALTH
httpd   running                412  0         3m2s    -                        on-failure  -
flaky   crashloop, next in 3s  -    7         -       1 (4s ago)               always      -
killed  running                500  1         26h0m   137/SIGKILL (26h0m ago)  on-failure  -
slow    crashloop, starting    -    3         -       2 (2s ago)               always      -
broken  failed                 -    0         -       -                        on-failure  -
db      running                600  0         5s      -                        on-failure  starting
web     running                700  0         1m0s    -                        always      healthy
app     waiting                -    0         -       -                        on-failure  -
broken: read bundle file: no such file
app: waiting for db (healthy; it is starting)
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
	if len(st.Services) != 8 || st.Services[1].Name != "flaky" || st.Services[1].Restarts != 7 || !st.Now.Equal(testStatus().Now) {
		t.Errorf("status %+v", st)
	}
}

// The rows keep the columns the boot tests read by position: name, state,
// pid, restarts; and the summary stays the last line, as they parse it.
func TestWriteStatusTableColumns(t *testing.T) {
	st := testStatus()
	var b strings.Builder
	if err := WriteStatusTable(&b, &st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	cd := regexp.MustCompile(`^containerd: (?:pid (\d+)|not running), restarts (\d+); orphans reaped: (\d+); panics recovered: \d+$`)
	if !cd.MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	sep := regexp.MustCompile(`\s{2,}`)
	for _, l := range lines {
		if row := sep.Split(l, -1); row[0] == "killed" {
			if len(row) < 7 || row[1] != "running" || row[2] != "500" || row[3] != "1" || !regexp.MustCompile(`^killed\s+(running|starting)\s.*\s1\s.*137/SIGKILL`).MatchString(l) {
				t.Errorf("row %q", row)
			}
		}
	}
}

func TestWriteServiceStatusDetail(t *testing.T) {
	st := testStatus()
	var b strings.Builder
	for _, name := range []string{"db", "app", "flaky"} {
		s, err := st.Service(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteServiceDetail(&b, s, st.Now); err != nil {
			t.Fatal(err)
		}
		b.WriteString("--\n")
	}
	want := `name: db
state: running
pid: 600
restarts: 0
policy: on-failure
uptime: 5s
last exit: -
health: starting
failing streak: 2
last check: 1s ago
check output:
    psql: connection refused
    is the server running?
waiting for: -
depends on: -
namespace: services.linuxkit
log: /var/log/db.log
error: -
--
name: app
state: waiting
pid: -
restarts: 0
policy: on-failure
uptime: -
last exit: -
health: - (no health check)
failing streak: -
last check: -
check output: -
waiting for: db (healthy; it is starting)
depends on: db (service_healthy), web (service_started)
namespace: services.linuxkit
log: /var/log/app.log
error: -
--
name: flaky
state: crashloop, next in 3s
pid: -
restarts: 7
policy: always
uptime: -
last exit: 1 (4s ago)
health: - (no health check)
failing streak: -
last check: -
check output: -
waiting for: -
depends on: -
namespace: -
log: -
error: -
--
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if _, err := st.Service("x"); !errors.Is(err, ErrNoService) || err.Error() != `no such service "x"` {
		t.Errorf("unknown service: %v", err)
	}
}

func TestStatusLine(t *testing.T) {
	st := testStatus()
	for name, want := range map[string]string{
		"httpd":  "httpd: running pid 412",
		"db":     "db: running pid 600, health starting",
		"app":    "app: waiting for db (healthy; it is starting)",
		"broken": "broken: failed: read bundle file: no such file",
		"flaky":  "flaky: crashloop, next in 3s",
	} {
		s, err := st.Service(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := StatusLine(s, st.Now); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// The JSON the keel command prints for scripts reads back as the status.
func TestStatusJSON(t *testing.T) {
	st := testStatus()
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	app, err := back.Service("app")
	if err != nil || app.WaitingFor != "db (healthy; it is starting)" || len(app.DependsOn) != 2 || app.DependsOn[0].Condition != bundle.ConditionHealthy {
		t.Errorf("app %+v, %v", app, err)
	}
	db, err := back.Service("db")
	if err != nil || db.Health == nil || db.Health.FailingStreak != 2 || !db.Health.LastCheck.Equal(st.Now.Add(-time.Second)) {
		t.Errorf("db %+v, %v", db, err)
	}
}
