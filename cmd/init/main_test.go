package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keel-os/keel/pkg/initsig"
	"github.com/keel-os/keel/pkg/supervisor"
	"golang.org/x/sys/unix"
)

// Every signal whose default would end PID 1, sent with kill(2), must be
// received, not obeyed: without catchSignals' Notify the Go runtime ends
// this test binary on the first of them.
func TestFatalSignalsAreCaught(t *testing.T) {
	s := catchSignals()
	for _, sig := range initsig.FatalByDefault {
		if err := unix.Kill(os.Getpid(), sig.(unix.Signal)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-s.shutdown:
			if got != sig {
				t.Errorf("sent %v, received %v", sig, got)
			}
			if _, ok := supervisor.ActionFor(got); ok {
				t.Errorf("%v would shut the machine down", sig)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%v was not delivered to PID 1's channel", signalName(sig))
		}
	}
}

type recorder struct {
	mu      sync.Mutex
	actions []supervisor.Action
	got     chan struct{}
}

func (r *recorder) shutdown(a supervisor.Action) error {
	r.mu.Lock()
	r.actions = append(r.actions, a)
	n := len(r.actions)
	r.mu.Unlock()
	r.got <- struct{}{}
	if n == 1 {
		panic("shutdown blew up") // the next request must still be served
	}
	return errors.New("reboot(2) failed") // as outside a VM
}

// After a panic in the boot, and after a panic during a shutdown, PID 1
// still serves shutdown requests: signals and its own.
func TestShutdownWorksAfterPanics(t *testing.T) {
	rec := &recorder{got: make(chan struct{}, 4)}
	p := &pid1{log: slog.New(slog.DiscardHandler), requests: make(chan supervisor.Action, 1)}
	p.shutdownFn = rec.shutdown
	sigs := make(chan os.Signal, 4)
	go p.run(func() { panic("boot blew up") }, sigs)

	sigs <- unix.SIGHUP // ignored
	sigs <- unix.SIGUSR2
	wait := func(what string) {
		select {
		case <-rec.got:
		case <-time.After(time.Minute):
			t.Fatalf("no shutdown after %s", what)
		}
	}
	wait("SIGUSR2 after a boot panic")
	p.request(supervisor.Halt)
	wait("a request after a shutdown that panicked")
	sigs <- unix.SIGTERM
	wait("SIGTERM after a failed shutdown")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []supervisor.Action{supervisor.PowerOff, supervisor.Halt, supervisor.Reboot}
	if len(rec.actions) != len(want) {
		t.Fatalf("actions %v, want %v", rec.actions, want)
	}
	for i := range want {
		if rec.actions[i] != want[i] {
			t.Fatalf("actions %v, want %v", rec.actions, want)
		}
	}
}

// The services run under crun when the image has it as an executable
// file, and under the shim's default (runc) otherwise.
func TestServiceRuntime(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	exe := filepath.Join(dir, "crun")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{exe: exe, plain: "", filepath.Join(dir, "none"): "", dir: ""} {
		if got := serviceRuntime(log, path); got != want {
			t.Errorf("serviceRuntime(%s) = %q, want %q", path, got, want)
		}
	}
}
