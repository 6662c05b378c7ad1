package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keel-os/keel/pkg/progress"
)

// progressOptions are keel build's --progress and -q.
type progressOptions struct {
	mode  string
	quiet bool
}

// addProgressFlags registers --progress and -q.
func addProgressFlags(fs *pflag.FlagSet) *progressOptions {
	o := &progressOptions{mode: "auto"}
	fs.Var((*progressMode)(&o.mode), "progress", "how to show pulls and writes: auto (tty when standard error is a terminal, else plain), plain (one line each, on standard output), tty (redrawn live on standard error) or none")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors (--progress=none)")
	return o
}

// progressMode is --progress: one of progress.Modes.
type progressMode string

func (m *progressMode) String() string { return string(*m) }
func (m *progressMode) Type() string   { return "mode" }

func (m *progressMode) Set(s string) error {
	if !slices.Contains(progress.Modes, s) {
		return fmt.Errorf("want one of %s", strings.Join(progress.Modes, ", "))
	}
	*m = progressMode(s)
	return nil
}

// display makes the display the options ask for. The live display draws
// on stderr, the terminal a person watches even when stdout is
// redirected; plain lines go to stdout, where keel build has always
// printed them.
func (o *progressOptions) display(stdout, stderr *os.File) *progress.Display {
	mode := progress.None
	if !o.quiet {
		mode, _ = progress.ParseMode(o.mode, stderr) // checked by the flag
	}
	var w io.Writer = stdout
	switch mode {
	case progress.TTY:
		w = stderr
	case progress.None:
		w = io.Discard
	}
	return progress.New(w, mode)
}
