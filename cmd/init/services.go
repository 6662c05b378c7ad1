package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/keel-os/keel/pkg/goroutine"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-os/keel/pkg/bootreport"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	"github.com/keel-os/keel/pkg/supervisor"
)

// The same binary is the console's status command when run as "keel"
// (/usr/bin/keel is a link to /init). This runs before main.
func init() {
	if filepath.Base(os.Args[0]) == "keel" {
		os.Exit(keelCommand(os.Stdout, os.Stderr, os.Args[1:]))
	}
}

// serviceSystem is containerd and the services, as PID 1 runs them.
type serviceSystem struct {
	log        *slog.Logger
	containerd *supervisor.Containerd
	services   *supervisor.Services
	reaper     *supervisor.Reaper
}

func newServiceSystem(log *slog.Logger, reaper *supervisor.Reaper, mounts *mount.Table) *serviceSystem {
	cd := &supervisor.Containerd{Reaper: reaper, Log: log}
	return &serviceSystem{
		log:        log,
		containerd: cd,
		services:   &supervisor.Services{Containerd: cd, Mounts: mounts, Log: log, LogDir: logDir},
		reaper:     reaper,
	}
}

// Start starts containerd when the image has services, then every service,
// the log bounding and the status socket. It returns once each service has
// been started once.
func (s *serviceSystem) Start(ctx context.Context) {
	if err := supervisor.ServeStatus(ctx, s.log, supervisor.DefaultStatusSocket, s.status); err != nil {
		s.log.Warn("status", "err", err)
	}
	bundles, err := bundle.List("/", bundle.Service)
	if err != nil {
		s.log.Error("services", "err", err)
	}
	if len(bundles) == 0 {
		s.log.Info("no services, containerd not started")
		return
	}
	if err := s.containerd.Start(ctx); err != nil {
		s.log.Error("containerd failed, services not started", "err", err)
		return
	}
	bootreport.Mark("containerd")
	goroutine.Go(s.log, "logs", true, func() {
		supervisor.KeepLogsBounded(ctx, s.log, supervisor.DefaultLogCheck, supervisor.DefaultLogMax, func() []string {
			return append(s.services.LogPaths(), supervisor.DefaultContainerdLog)
		})
	})
	start := time.Now()
	s.services.Start(ctx, bundles)
	running := 0
	for _, st := range s.services.Status() {
		if st.State == supervisor.StateRunning {
			running++
		}
	}
	bootreport.Mark("services")
	s.log.Info("services started", "count", len(bundles), "running", running, "duration", time.Since(start).Round(time.Millisecond))
}

func (s *serviceSystem) status() supervisor.Status {
	return supervisor.Status{
		Now:        time.Now(),
		Containerd: supervisor.ContainerdStatus{Pid: s.containerd.Pid(), Restarts: s.containerd.Restarts()},
		Services:   s.services.Status(),
		Orphans:    s.reaper.Orphans(),
	}
}

const keelUsage = `usage: keel status          services: state, pid, restarts, uptime, last exit
       keel logs NAME [-n N]   the last N lines (default 50) of a service's log
`

// keelCommand is the in-guest "keel" command.
func keelCommand(stdout, stderr io.Writer, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keelUsage)
		return 2
	}
	switch args[0] {
	case "status":
		st, err := supervisor.FetchStatus(supervisor.DefaultStatusSocket)
		if err != nil {
			fmt.Fprintln(stderr, "keel:", err)
			return 1
		}
		if err := supervisor.WriteStatusTable(stdout, st); err != nil {
			return 1
		}
		return 0
	case "logs":
		fs := flag.NewFlagSet("logs", flag.ContinueOnError)
		fs.SetOutput(stderr)
		n := fs.Int("n", 50, "lines to show (0: all that is kept)")
		// Allow the name before or after the flags.
		var name string
		rest := args[1:]
		if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
			name, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if name == "" && fs.NArg() == 1 {
			name = fs.Arg(0)
		}
		if name == "" || !bundle.ValidName(name) {
			fmt.Fprint(stderr, keelUsage)
			return 2
		}
		b, err := supervisor.TailLog(filepath.Join(logDir, name+".log"), *n)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "keel: no log for %q in %s\n", name, logDir)
			return 1
		}
		if err != nil {
			fmt.Fprintln(stderr, "keel:", err)
			return 1
		}
		_, _ = stdout.Write(b)
		return 0
	}
	fmt.Fprint(stderr, keelUsage)
	return 2
}
