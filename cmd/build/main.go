// Command keel builds bootable Linux images from a YAML list of OCI images
// and boots them under QEMU.
package main

//go:generate env KEEL_UPDATE_DOCS=1 go test -count=1 -run TestCLIDocs .

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=...") for
// releases; otherwise the module's build information is used.
var version = ""

// Exit statuses: 2 is a command line keel cannot make sense of, as with
// most Unix tools (and Go's flag package, which keel used before cobra).
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	err := dispatch(os.Args[1:])
	if err == nil {
		return
	}
	// One prefix per line: a YAML file with several problems gives one
	// error line each, and every line stays greppable.
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(os.Stderr, "keel: %s\n", line)
	}
	if errors.As(err, new(usageError)) {
		os.Exit(exitUsage)
	}
	os.Exit(exitFailure)
}

// dispatch runs the keel command line args (without the program name).
// Help and version requests return nil; a command line that is wrong
// returns a usageError.
func dispatch(args []string) error {
	root := newRootCmd()
	root.SetArgs(singleDashLongFlags(root, args))
	return root.Execute()
}

// usageError is a command line keel cannot make sense of: an unknown
// command or flag, a bad flag value, a missing or extra argument. It is
// one line, and says where the help is.
type usageError struct {
	err error
	// cmd is the command whose help explains what it wants.
	cmd string
}

func (e usageError) Error() string {
	// main prefixes "keel: "; a subcommand names itself after it.
	if sub, ok := strings.CutPrefix(e.cmd, "keel "); ok {
		return fmt.Sprintf("%s: %v (see `%s --help`)", sub, e.err, e.cmd)
	}
	return fmt.Sprintf("%v (see `%s --help`)", e.err, e.cmd)
}

func (e usageError) Unwrap() error { return e.err }

// usageErrorf makes a usageError for cmd.
func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...), cmd.CommandPath()}
}

// newRootCmd makes the keel command and its subcommands.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "keel COMMAND",
		Short: "build bootable Linux images from a YAML list of OCI images, and boot them",
		Long: `keel builds a kernel, an initrd and a kernel command line from a LinuxKit-style YAML
file that lists OCI images, and boots them under QEMU.

Flags go before or after the arguments. Long flags take two dashes
(--dir) or, as in earlier keel versions, one (-dir).`,
		Version: keelVersion(),
		// docs/cli.md is compared with what the commands say: no date in it.
		DisableAutoGenTag: true,
		// main prints the error, once; a usage error says where the help is
		// rather than printing all of it.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	groupCommand(root)
	root.SetVersionTemplate("keel {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err, c.CommandPath()}
	})
	root.AddCommand(
		newBuildCmd(),
		newValidateCmd(),
		newRunCmd(),
		newCacheCmd(),
		newPushCmd(),
		newVersionCmd(),
	)
	root.SetHelpCommand(newHelpCmd(root))
	// Completion and --version are made here rather than when the command
	// runs, so that docs/cli.md shows them as `keel --help` does.
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	return root
}

// groupCommand makes cmd a command that only holds subcommands: given no
// subcommand, or one it does not know, it fails with a usage error
// (cobra would print the help and exit 0, which hides a typo in a script).
func groupCommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		if len(args) == 0 {
			return usageErrorf(c, "want a command: %s", strings.Join(names, ", "))
		}
		hint := ""
		c.SuggestionsMinimumDistance = 2
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
		}
		return usageErrorf(c, "unknown command %q%s", args[0], hint)
	}
}

// wantArgs checks a command's argument count: at least min, at most max
// (max < 0 for no limit); what names them for the error.
func wantArgs(min, max int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usageErrorf(c, "want %s", what)
		case max >= 0 && len(args) > max:
			return usageErrorf(c, "unexpected argument %q: want %s", args[max], what)
		}
		return nil
	}
}

// newHelpCmd is `keel help [COMMAND...]`. Unlike cobra's own, it fails
// with a usage error for a command that does not exist instead of
// printing the root's help and exiting 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]...",
		Short: "show a command's help",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf(root, "help: no command %q", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	}
}

// completeFlag makes the shell complete flag's value from values.
func completeFlag(cmd *cobra.Command, flag string, values ...string) {
	cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print keel's version",
		Args:  wantArgs(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(c.OutOrStdout(), "keel", keelVersion())
			return nil
		},
	}
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
