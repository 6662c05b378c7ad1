package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/logfile"
	"github.com/keel-os/keel/pkg/supervisor"
)

// The same binary is the console's status command when run as "keel"
// (/usr/bin/keel is a link to /init). This runs before main.
func init() {
	if filepath.Base(os.Args[0]) == "keel" {
		os.Exit(keelCommand(os.Stdout, os.Stderr, os.Args[1:]))
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
		b, err := logfile.Tail(filepath.Join(logDir, name+".log"), *n)
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
