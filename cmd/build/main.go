// Command keel builds bootable Linux images from a YAML list of OCI images
// and boots them under QEMU.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at link time (-ldflags "-X main.version=...") for
// releases; otherwise the module's build information is used.
var version = ""

// command is one subcommand of keel.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

func commands() []command {
	return []command{
		{"build", "build a kernel, initrd and cmdline from a YAML file", buildCommand},
		{"validate", "check a YAML file without building it", validateCommand},
		{"run", "boot a built image under QEMU", runCommand},
		{"cache", "manage the local image cache: ls, rm, import (OCI layout dir or tar, docker-archive), export, clean", cacheCommand},
		{"version", "print keel's version", versionCommand},
		{"help", "show this help", helpCommand},
	}
}

func main() {
	if err := dispatch(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			// One prefix per line: a YAML file with several problems gives
			// one error line each, and every line stays greppable.
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintf(os.Stderr, "keel: %s\n", line)
			}
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 0 for a help request, 1 for any failure.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}

func dispatch(args []string) error {
	if len(args) == 0 {
		usage(os.Stderr)
		return errors.New("no command given")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args[1:])
		}
	}
	return fmt.Errorf("unknown command %q (see `keel help`)", name)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: keel COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`keel COMMAND -h` shows a command's flags.")
}

func helpCommand(args []string) error {
	if len(args) > 0 {
		return dispatch([]string{args[0], "-h"})
	}
	usage(os.Stdout)
	return nil
}

func versionCommand(args []string) error {
	fmt.Println("keel", keelVersion())
	return nil
}

func keelVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
			v = "devel-" + s.Value[:12]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// newFlagSet makes a subcommand's flag set whose usage names the command
// and its arguments.
func newFlagSet(name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: keel %s [flags] %s\n\n%s\n", name, args, about)
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}
