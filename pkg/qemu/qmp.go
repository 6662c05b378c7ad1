package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// QMP sends one command to QEMU's QMP socket at path and returns its
// "return" value. It dials, negotiates capabilities, and closes again, so a
// test can poke the VM (system_powerdown, send-key) without keeping state.
func QMP(path, command string, args any) (json.RawMessage, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	enc := json.NewEncoder(conn)

	// The greeting, then capabilities negotiation, then the command.
	if _, err := readReply(r); err != nil {
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if err := enc.Encode(map[string]any{"execute": "qmp_capabilities"}); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	if _, err := readReply(r); err != nil {
		return nil, fmt.Errorf("qmp capabilities: %w", err)
	}
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	if err := enc.Encode(req); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	ret, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	return ret, nil
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
