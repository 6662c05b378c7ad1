package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/keel-os/keel/pkg/supervisor"
)

// The same binary is the console's keel command when run as "keel"
// (/usr/bin/keel is a link to /init). This runs before main.
func init() {
	if filepath.Base(os.Args[0]) == "keel" {
		os.Exit(keelCommand(os.Stdout, os.Stderr, os.Args[1:]))
	}
}

// keelCommand is the in-guest "keel" command (keelcmd.go), talking to PID
// 1 on its control socket and reading the logs in logDir.
func keelCommand(stdout, stderr io.Writer, args []string) int {
	k := &keelCmd{stdout: stdout, stderr: stderr, socket: supervisor.DefaultStatusSocket, logDir: logDir}
	return k.run(args)
}
