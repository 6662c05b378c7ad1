package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// singleDashLongFlags rewrites the single-dash long flags of keel before
// cobra (2.0) — `-dir out`, `-format=tar` — to their two-dash spelling,
// so that scripts written for them keep working. pflag alone would read
// `-dir` as the shorthands -d -i -r.
//
// Only a word that names a long flag of the command being run (or one it
// inherits) is rewritten, and never a flag's value, nor anything after
// `--`: `-` (standard input), a single-letter shorthand such as -q or -l,
// and an argument that merely starts with a dash are left as they are.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	lookup := func(name string) *pflag.Flag {
		switch name {
		case "help", "version":
			// Added by cobra when the command runs; both are booleans.
			return &pflag.Flag{Name: name, NoOptDefVal: "true"}
		}
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	out := make([]string, 0, len(args))
	takesValue := false // the previous word was a flag that takes the next as its value
	for i, a := range args {
		if takesValue {
			out = append(out, a)
			takesValue = false
			continue
		}
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, hasValue := "", false
		switch {
		case strings.HasPrefix(a, "--"):
			name, _, hasValue = strings.Cut(a[2:], "=")
			if f := lookup(name); f != nil {
				takesValue = !hasValue && f.NoOptDefVal == ""
			}
		case strings.HasPrefix(a, "-") && len(a) > 2:
			name, _, hasValue = strings.Cut(a[1:], "=")
			if f := lookup(name); f != nil && len(name) > 1 {
				a = "-" + a
				takesValue = !hasValue && f.NoOptDefVal == ""
			}
		case strings.HasPrefix(a, "-") && len(a) == 2:
			if f := cmd.Flags().ShorthandLookup(a[1:]); f != nil {
				takesValue = f.NoOptDefVal == ""
			} else if f := cmd.InheritedFlags().ShorthandLookup(a[1:]); f != nil {
				takesValue = f.NoOptDefVal == ""
			}
		}
		out = append(out, a)
	}
	return out
}
