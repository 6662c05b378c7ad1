// Package bootreport records when each boot phase was reached, in
// milliseconds since /init started, and keeps /run/keel/boot.json up to
// date with it:
//
//	{"init": 0, "mounts": 9, "modules": 210, "onboot 000-dhcp": 1450, ...}
//
// Phases are kept in the order they were marked. Any part of PID 1 calls
// Mark; it is cheap and safe for concurrent use.
package bootreport

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Path is where the report is written.
const Path = "/run/keel/boot.json"

// Report is the list of phases of one boot.
type Report struct {
	mu     sync.Mutex
	start  time.Duration // monotonic time /init started
	now    func() time.Duration
	path   string
	phases []Phase
}

// Phase is one mark.
type Phase struct {
	Name string
	At   time.Duration // since /init started
}

// New returns a report whose zero, phase "init", is start on the clock
// now (both CLOCK_MONOTONIC durations, as bootlog.Monotonic gives),
// written to path on every mark; an empty path writes nothing until
// SetPath.
func New(start time.Duration, now func() time.Duration, path string) *Report {
	return &Report{start: start, now: now, path: path, phases: []Phase{{"init", 0}}}
}

// SetPath makes the report be written to path from now on, and writes it
// (e.g. once /run is mounted).
func (r *Report) SetPath(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.path = path
	return r.write()
}

// Mark records that phase name was reached now. A name marked again keeps
// its first time: "ready" means first ready. It returns the time since
// /init started.
func (r *Report) Mark(name string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := r.now() - r.start
	for _, p := range r.phases {
		if p.Name == name {
			return p.At
		}
	}
	r.phases = append(r.phases, Phase{name, at})
	if r.path != "" {
		// Nowhere to report a failure to; the console lines still say
		// the same.
		_ = r.write()
	}
	return at
}

// Phases returns the marks so far, in order.
func (r *Report) Phases() []Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Phase(nil), r.phases...)
}

// JSON is the report as written: an object from phase name to whole
// milliseconds since /init started, in the order the phases were marked.
func (r *Report) JSON() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.json()
}

func (r *Report) json() []byte {
	b := []byte{'{'}
	for i, p := range r.phases {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n  "...)
		name, _ := json.Marshal(p.Name)
		b = append(b, name...)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, p.At.Milliseconds(), 10)
	}
	return append(b, "\n}\n"...)
}

// write replaces the file atomically, so that a reader never sees half of
// it.
func (r *Report) write() error {
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, r.json(), 0o644); err != nil {
		return fmt.Errorf("write boot report: %w", err)
	}
	return os.Rename(tmp, r.path)
}

var (
	defaultMu sync.Mutex
	def       *Report
)

// Init sets up the report Mark writes to: start is the monotonic time
// /init started.
func Init(start time.Duration, now func() time.Duration, path string) *Report {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	def = New(start, now, path)
	return def
}

// WriteTo is SetPath on the report set up by Init.
func WriteTo(path string) error {
	defaultMu.Lock()
	r := def
	defaultMu.Unlock()
	if r == nil {
		return nil
	}
	return r.SetPath(path)
}

// Mark records phase name on the report set up by Init; before Init (or in
// tests) it does nothing.
func Mark(name string) {
	defaultMu.Lock()
	r := def
	defaultMu.Unlock()
	if r != nil {
		r.Mark(name)
	}
}
