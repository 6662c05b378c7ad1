package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// QMP sends one command to QEMU's QMP socket at path and returns its
// "return" value. It dials, negotiates capabilities, and closes again, so a
// test can poke the VM (system_powerdown, send-key) without keeping state.
func QMP(path, command string, args any) (json.RawMessage, error) {
	s, err := dialQMP(path)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	return s.execute(command, args)
}

// Stop ends the VM whose QMP socket is at path: it presses the ACPI power
// button (keel's PID 1 then shuts down in order, as on `poweroff`) and
// waits up to grace for QEMU to exit; after that, it tells QEMU to quit.
// graceful says whether the guest powered off by itself.
func Stop(path string, grace time.Duration) (graceful bool, err error) {
	s, err := dialQMP(path)
	if err != nil {
		return false, err
	}
	defer s.conn.Close()
	if _, err := s.execute("system_powerdown", nil); err != nil {
		return false, err
	}
	if s.waitClosed(grace) {
		return true, nil
	}
	if _, err := s.execute("quit", nil); err != nil && !isClosed(err) {
		return false, err
	}
	if !s.waitClosed(10 * time.Second) {
		return false, fmt.Errorf("qmp %s: QEMU did not quit", path)
	}
	return false, nil
}

// qmpSession is a QMP connection past capabilities negotiation.
type qmpSession struct {
	conn net.Conn
	r    *bufio.Reader
	enc  *json.Encoder
}

func dialQMP(path string) (*qmpSession, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	s := &qmpSession{conn: conn, r: bufio.NewReader(conn), enc: json.NewEncoder(conn)}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The greeting, then capabilities negotiation.
	if _, err := readReply(s.r); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if _, err := s.execute("qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *qmpSession) execute(command string, args any) (json.RawMessage, error) {
	s.conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	if err := s.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	ret, err := readReply(s.r)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	return ret, nil
}

// waitClosed reads events until QEMU closes the socket (it has exited),
// for at most d; it says whether it did.
func (s *qmpSession) waitClosed(d time.Duration) bool {
	s.conn.SetDeadline(time.Now().Add(d))
	for {
		if _, err := s.r.ReadBytes('\n'); err != nil {
			return isClosed(err)
		}
	}
}

// isClosed says whether err is the peer closing the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readReply reads messages until one that is not an asynchronous event.
func readReply(r *bufio.Reader) (json.RawMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var msg struct {
			QMP    json.RawMessage `json:"QMP"`
			Return json.RawMessage `json:"return"`
			Event  string          `json:"event"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return nil, fmt.Errorf("bad reply %q: %w", line, err)
		}
		switch {
		case msg.Error != nil:
			return nil, fmt.Errorf("%s: %s", msg.Error.Class, msg.Error.Desc)
		case msg.Event != "":
			continue
		case msg.QMP != nil:
			return msg.QMP, nil
		default:
			return msg.Return, nil
		}
	}
}
