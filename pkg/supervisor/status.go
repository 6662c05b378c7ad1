package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"
	"golang.org/x/sys/unix"
)

// DefaultStatusSocket is where PID 1 answers the status command.
const DefaultStatusSocket = "/run/keel/status.sock"

// Status is what PID 1 reports on its status socket.
type Status struct {
	Now        time.Time        `json:"now"`
	Containerd ContainerdStatus `json:"containerd"`
	Services   []ServiceStatus  `json:"services"`
	Orphans    uint64           `json:"orphansReaped"`
	// Panics is how many panics PID 1 recovered from.
	Panics uint64            `json:"panicsRecovered"`
	Extra  map[string]string `json:"extra,omitempty"`
}

// ContainerdStatus is the daemon's part of Status.
type ContainerdStatus struct {
	Pid      int `json:"pid"`
	Restarts int `json:"restarts"`
}

// Request is what the keel command asks PID 1 on its control socket: one
// JSON object a connection.
type Request struct {
	// Op is "status", "start", "stop" or "restart".
	Op   string `json:"op"`
	Name string `json:"name,omitempty"`
}

// Response is PID 1's answer: the status, or an error.
type Response struct {
	Status *Status `json:"status,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// serveControl answers requests on a unix socket at path with handle,
// one request a connection, until ctx is done. The socket is made for
// root only. A request's handling is bounded by the handler (a stop takes
// up to the service's grace period).
func serveControl(ctx context.Context, log *slog.Logger, path string, handle func(Request) Response) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	goroutine.Go(log, "control close", false, func() {
		<-ctx.Done()
		l.Close()
	})
	goroutine.Go(log, "control", false, func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("control socket closed", "err", err)
				}
				return
			}
			// Each in its own goroutine: a stop waits out a grace period,
			// and status must answer meanwhile.
			goroutine.Go(log, "control request", false, func() {
				defer conn.Close()
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				var req Request
				resp := Response{}
				if err := json.NewDecoder(conn).Decode(&req); err != nil {
					resp.Error = "bad request: " + err.Error()
				} else {
					resp = handle(req)
				}
				_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = json.NewEncoder(conn).Encode(resp)
			})
		}
	})
	return nil
}

// Ask sends req to PID 1's control socket at path and returns its answer;
// timeout bounds the whole exchange.
func Ask(path string, req Request, timeout time.Duration) (*Response, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("ask PID 1: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("ask PID 1: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read PID 1's answer on %s: %w", path, err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// FetchStatus asks PID 1 for its status on the socket at path.
func FetchStatus(path string) (*Status, error) {
	resp, err := Ask(path, Request{Op: "status"}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("PID 1 answered no status")
	}
	return resp.Status, nil
}

// WriteStatusTable prints st as a table, one service a line, then a line
// for each service that failed (its error) or waits for others, then
// containerd's line:
//
//	NAME    STATE      PID   RESTARTS  UPTIME  LAST EXIT   POLICY      HEALTH
//	httpd   running    412   0         3m2s    -           on-failure  healthy
//	flaky   crashloop  -     7         -       1 (4s ago)  always      -
//	app     waiting    -     0         -       -           on-failure  -
//	app: waiting for db (healthy; it is starting)
//	containerd: pid 300, restarts 1; orphans reaped: 4; panics recovered: 0
//
// HEALTH is "-" for a service without a health check. The columns before
// it keep their places: scripts read the name, state and pid by position.
func WriteStatusTable(w io.Writer, st *Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tSTATE\tPID\tRESTARTS\tUPTIME\tLAST EXIT\tPOLICY\tHEALTH\n")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, stateText(s, st.Now), pidText(s),
			s.Restarts, uptimeText(s, st.Now), lastExitText(s, st.Now), s.Policy, healthText(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st.Services {
		if showError(s) {
			fmt.Fprintf(w, "%s: %s\n", s.Name, s.Error)
		}
		if s.State == StateWaiting && s.WaitingFor != "" {
			fmt.Fprintf(w, "%s: waiting for %s\n", s.Name, s.WaitingFor)
		}
	}
	cd := "not running"
	if st.Containerd.Pid > 0 {
		cd = "pid " + strconv.Itoa(st.Containerd.Pid)
	}
	_, err := fmt.Fprintf(w, "containerd: %s, restarts %d; orphans reaped: %d; panics recovered: %d\n", cd, st.Containerd.Restarts, st.Orphans, st.Panics)
	return err
}

// Service is the status of the service named name, or an error wrapping
// ErrNoService.
func (st *Status) Service(name string) (*ServiceStatus, error) {
	for i := range st.Services {
		if st.Services[i].Name == name {
			return &st.Services[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrNoService, name)
}

// WriteServiceDetail prints one service in detail, one "key: value" a
// line, "-" for what does not apply; the last health check's output
// follows its key, each of its lines indented:
//
//	name: web
//	state: running
//	pid: 412
//	...
//	check output:
//	    connect: connection refused
//	depends on: db (service_healthy), cache (service_started)
func WriteServiceDetail(w io.Writer, s *ServiceStatus, now time.Time) error {
	var b strings.Builder
	kv := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	kv("name", s.Name)
	kv("state", stateText(*s, now))
	kv("pid", pidText(*s))
	kv("restarts", strconv.Itoa(s.Restarts))
	kv("policy", s.Policy)
	kv("uptime", uptimeText(*s, now))
	kv("last exit", lastExitText(*s, now))
	h := s.Health
	if h == nil {
		kv("health", "- (no health check)")
		kv("failing streak", "")
		kv("last check", "")
		kv("check output", "")
	} else {
		kv("health", h.State)
		kv("failing streak", strconv.Itoa(h.FailingStreak))
		last := ""
		if !h.LastCheck.IsZero() {
			last = roundAge(now.Sub(h.LastCheck)) + " ago"
		}
		kv("last check", last)
		out := strings.TrimRight(h.LastOutput, "\r\n")
		if out == "" {
			kv("check output", "")
		} else {
			b.WriteString("check output:\n")
			for _, l := range strings.Split(out, "\n") {
				fmt.Fprintf(&b, "    %s\n", strings.TrimRight(l, "\r"))
			}
		}
	}
	kv("waiting for", s.WaitingFor)
	deps := make([]string, 0, len(s.DependsOn))
	for _, d := range s.DependsOn {
		deps = append(deps, fmt.Sprintf("%s (%s)", d.Service, d.Condition))
	}
	kv("depends on", strings.Join(deps, ", "))
	kv("namespace", s.Namespace)
	kv("log", s.Log)
	kv("error", s.Error)
	_, err := io.WriteString(w, b.String())
	return err
}

// StatusLine is one service on one line, as the keel command says after
// starting or stopping it: "web: running pid 412, health starting".
func StatusLine(s *ServiceStatus, now time.Time) string {
	line := s.Name + ": " + stateText(*s, now)
	if s.State == StateWaiting && s.WaitingFor != "" {
		line = s.Name + ": waiting for " + s.WaitingFor
	}
	if s.Pid > 0 {
		line += " pid " + strconv.Itoa(s.Pid)
	}
	if s.Health != nil {
		line += ", health " + s.Health.State
	}
	if showError(*s) {
		line += ": " + s.Error
	}
	return line
}

// showError says whether s's error is current: it is kept after a run
// that could not start, until the next start.
func showError(s ServiceStatus) bool {
	return s.Error != "" && (s.State == StateFailed || s.State == StateBackoff || s.State == StateCrashLoop)
}

func pidText(s ServiceStatus) string {
	if s.Pid > 0 {
		return strconv.Itoa(s.Pid)
	}
	return "-"
}

func uptimeText(s ServiceStatus, now time.Time) string {
	if s.State == StateRunning && !s.StartedAt.IsZero() {
		return roundAge(now.Sub(s.StartedAt))
	}
	return "-"
}

func lastExitText(s ServiceStatus, now time.Time) string {
	if s.LastExitAt.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", exitCodeString(s.LastExit), roundAge(now.Sub(s.LastExitAt)))
}

func healthText(s ServiceStatus) string {
	if s.Health == nil || s.Health.State == "" {
		return "-"
	}
	return s.Health.State
}

// stateText is the STATE column: the state, flagged when crash-looping,
// with the time to the next start during a backoff.
func stateText(s ServiceStatus, now time.Time) string {
	state := s.State
	if s.CrashLooping {
		switch s.State {
		case StateRunning:
			state = "running (crashloop)"
		case StateStarting:
			state = "crashloop, starting"
		case StateBackoff:
			state = StateCrashLoop
		}
	}
	if !s.NextStart.IsZero() {
		state += ", next in " + roundAge(s.NextStart.Sub(now))
	}
	return state
}

// exitCodeString shows 128+N as the signal's name, as a shell would.
func exitCodeString(code int) string {
	if code > 128 && code < 128+65 {
		if name := unix.SignalName(unix.Signal(code - 128)); name != "" {
			return strconv.Itoa(code) + "/" + name
		}
	}
	return strconv.Itoa(code)
}

// roundAge prints a duration the way a person reads an age: 45s, 3m2s, 5h3m, 2d4h.
func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}

// ErrNoService is returned for a service name the status does not list.
var ErrNoService = errors.New("no such service")
