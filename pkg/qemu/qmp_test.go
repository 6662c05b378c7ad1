package qemu

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fakeQMP serves one QMP connection on a unix socket: it greets, answers
// every command, and closes the connection after the command closeAfter.
// It returns the socket's path and, once the connection ends, the
// commands it got.
func fakeQMP(t *testing.T, closeAfter string) (string, <-chan []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan []string, 1)
	go func() {
		var cmds []string
		defer func() { got <- cmds }()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var req struct {
				Execute string `json:"execute"`
			}
			json.Unmarshal(sc.Bytes(), &req)
			cmds = append(cmds, req.Execute)
			conn.Write([]byte(`{"return": {}}` + "\n"))
			if req.Execute == "system_powerdown" {
				conn.Write([]byte(`{"event": "POWERDOWN", "timestamp": {"seconds": 1, "microseconds": 0}}` + "\n"))
			}
			if req.Execute == closeAfter {
				return
			}
		}
	}()
	return path, got
}

func TestStopGraceful(t *testing.T) {
	path, got := fakeQMP(t, "system_powerdown")
	graceful, err := Stop(path, time.Minute)
	if err != nil || !graceful {
		t.Fatalf("Stop: graceful %v, %v", graceful, err)
	}
	if cmds := <-got; !reflect.DeepEqual(cmds, []string{"qmp_capabilities", "system_powerdown"}) {
		t.Errorf("commands %q", cmds)
	}
}

// A guest that ignores the power button is ended by quit.
func TestStopQuits(t *testing.T) {
	path, got := fakeQMP(t, "quit")
	graceful, err := Stop(path, time.Millisecond)
	if err != nil || graceful {
		t.Fatalf("Stop: graceful %v, %v", graceful, err)
	}
	if cmds := <-got; !reflect.DeepEqual(cmds, []string{"qmp_capabilities", "system_powerdown", "quit"}) {
		t.Errorf("commands %q", cmds)
	}
}

func TestStopNoVM(t *testing.T) {
	if _, err := Stop(filepath.Join(t.TempDir(), "none.sock"), time.Second); err == nil {
		t.Error("Stop with no socket worked")
	}
}
