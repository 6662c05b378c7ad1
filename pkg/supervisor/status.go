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

// WriteStatusTable prints st as a table, one service a line:
//
//	NAME    STATE      PID   RESTARTS  UPTIME  LAST EXIT
//	httpd   running    412   0         3m2s    -
//	flaky   crashloop  -     7         -       1 (4s ago)
func WriteStatusTable(w io.Writer, st *Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tSTATE\tPID\tRESTARTS\tUPTIME\tLAST EXIT\tPOLICY\n")
	for _, s := range st.Services {
		pid, up := "-", "-"
		if s.Pid > 0 {
			pid = strconv.FormatUint(uint64(s.Pid), 10)
		}
		if s.State == StateRunning && !s.StartedAt.IsZero() {
			up = roundAge(st.Now.Sub(s.StartedAt))
		}
		last := "-"
		if !s.LastExitAt.IsZero() {
			last = fmt.Sprintf("%s (%s ago)", exitCodeString(s.LastExit), roundAge(st.Now.Sub(s.LastExitAt)))
		}
		state := stateText(s, st.Now)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, state, pid, s.Restarts, up, last, s.Policy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st.Services {
		if s.Error != "" && (s.State == StateFailed || s.State == StateBackoff || s.State == StateCrashLoop) {
			fmt.Fprintf(w, "%s: %s\n", s.Name, s.Error)
		}
	}
	cd := "not running"
	if st.Containerd.Pid > 0 {
		cd = "pid " + strconv.Itoa(st.Containerd.Pid)
	}
	_, err := fmt.Fprintf(w, "containerd: %s, restarts %d; orphans reaped: %d; panics recovered: %d\n", cd, st.Containerd.Restarts, st.Orphans, st.Panics)
	return err
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
		if name := signalName(code - 128); name != "" {
			return strconv.Itoa(code) + "/" + name
		}
	}
	return strconv.Itoa(code)
}

func signalName(n int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
	return names[n]
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
