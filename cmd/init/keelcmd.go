package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/logfile"
	"github.com/keel-os/keel/pkg/supervisor"
)

const keelUsage = `usage: keel status [--json] [NAME]  the services: state, pid, restarts, uptime, last exit,
                                    policy, health; with NAME, that service in detail
       keel start NAME              start a service (a stopped one stays stopped until then)
       keel stop NAME               stop a service: SIGTERM, SIGKILL after its grace period
       keel restart NAME            stop a service, then start it
       keel logs [-f] [-n N] NAME   the last N lines of a service's log (default 50, 0: all
                                    kept); -f: then follow it, until ctrl-c
Flags may come before or after NAME; --json prints the status as JSON, for scripts.
`

// opTimeout bounds a start, stop or restart: PID 1 answers a stop once the
// service has ended, which takes up to its grace period.
const opTimeout = 5 * time.Minute

// keelCmd is the in-guest keel command, with what tests replace.
type keelCmd struct {
	stdout, stderr io.Writer
	socket         string // PID 1's control socket
	logDir         string
	// ctx, if set, is the context logs -f ends with besides SIGINT and
	// SIGTERM.
	ctx context.Context
}

func (k *keelCmd) run(args []string) int {
	if len(args) == 0 {
		return k.usage()
	}
	switch args[0] {
	case "status":
		return k.status(args[1:])
	case "start", "stop", "restart":
		return k.op(args[0], args[1:])
	case "logs":
		return k.logs(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(k.stdout, keelUsage)
		return 0
	}
	return k.usage()
}

func (k *keelCmd) usage() int {
	fmt.Fprint(k.stderr, keelUsage)
	return 2
}

func (k *keelCmd) fail(err error) int {
	fmt.Fprintln(k.stderr, "keel:", err)
	return 1
}

// parse parses args with fs, flags before or after the operands, and
// returns the operands.
func (k *keelCmd) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(k.stderr, "keel %s: %v\n", fs.Name(), err)
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return operands, nil
		}
		operands = append(operands, args[0])
		args = args[1:]
	}
}

// name parses args for a command taking one service's name.
func (k *keelCmd) name(fs *flag.FlagSet, args []string) (string, bool) {
	ops, err := k.parse(fs, args)
	if err != nil || len(ops) != 1 || !bundle.ValidName(ops[0]) {
		return "", false
	}
	return ops[0], true
}

func (k *keelCmd) status(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	ops, err := k.parse(fs, args)
	if err != nil || len(ops) > 1 {
		return k.usage()
	}
	st, err := supervisor.FetchStatus(k.socket)
	if err != nil {
		return k.fail(err)
	}
	if len(ops) == 0 {
		if *asJSON {
			return k.printJSON(st)
		}
		if err := supervisor.WriteStatusTable(k.stdout, st); err != nil {
			return 1
		}
		return 0
	}
	s, err := st.Service(ops[0])
	if err != nil {
		return k.fail(err)
	}
	if *asJSON {
		return k.printJSON(s)
	}
	if err := supervisor.WriteServiceDetail(k.stdout, s, st.Now); err != nil {
		return 1
	}
	return 0
}

func (k *keelCmd) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return k.fail(err)
	}
	if _, err := k.stdout.Write(append(b, '\n')); err != nil {
		return 1
	}
	return 0
}

// op asks PID 1 to start, stop or restart a service and says how it is
// after.
func (k *keelCmd) op(op string, args []string) int {
	name, ok := k.name(flag.NewFlagSet(op, flag.ContinueOnError), args)
	if !ok {
		return k.usage()
	}
	resp, err := supervisor.Ask(k.socket, supervisor.Request{Op: op, Name: name}, opTimeout)
	if err != nil {
		return k.fail(err)
	}
	if resp.Status == nil {
		fmt.Fprintf(k.stdout, "%s: %s\n", name, map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}[op])
		return 0
	}
	s, err := resp.Status.Service(name)
	if err != nil {
		return k.fail(err)
	}
	fmt.Fprintln(k.stdout, supervisor.StatusLine(s, resp.Status.Now))
	return 0
}

func (k *keelCmd) logs(args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	n := fs.Int("n", 50, "lines to show (0: all that is kept)")
	follow := fs.Bool("f", false, "follow")
	name, ok := k.name(fs, args)
	if !ok {
		return k.usage()
	}
	path := filepath.Join(k.logDir, name+".log")
	if !*follow {
		b, err := logfile.Tail(path, *n)
		if errors.Is(err, os.ErrNotExist) {
			return k.noLog(name)
		}
		if err != nil {
			return k.fail(err)
		}
		_, _ = k.stdout.Write(b)
		return 0
	}
	ctx := k.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := logfile.Follow(ctx, path, *n, k.stdout)
	if errors.Is(err, os.ErrNotExist) {
		return k.noLog(name)
	}
	if err != nil {
		return k.fail(err)
	}
	return 0
}

func (k *keelCmd) noLog(name string) int {
	fmt.Fprintf(k.stderr, "keel: no log for %q in %s\n", name, k.logDir)
	return 1
}
