package progress

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// Mode is how a Display shows progress.
type Mode int

const (
	// Plain writes one whole line when a task ends and never moves the
	// cursor: for pipes, log files and CI.
	Plain Mode = iota
	// TTY redraws a live line per task in place, with ANSI escapes.
	TTY
	// None shows nothing at all.
	None
)

// Modes lists the values of --progress; "auto" picks TTY or Plain.
var Modes = []string{"auto", "plain", "tty", "none"}

// ParseMode reads a --progress value. "auto" is TTY when f is a terminal
// that can move its cursor, Plain otherwise.
func ParseMode(s string, f *os.File) (Mode, error) {
	switch s {
	case "auto", "":
		return Auto(f), nil
	case "plain":
		return Plain, nil
	case "tty":
		return TTY, nil
	case "none":
		return None, nil
	}
	return Plain, fmt.Errorf("unknown progress mode %q: want auto, plain, tty or none", s)
}

// Auto is TTY when f is a terminal, Plain otherwise. TERM=dumb (Emacs
// shells, some CI runners) is a terminal that cannot take escapes.
func Auto(f *os.File) Mode {
	if f == nil || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return Plain
	}
	return TTY
}

func (m Mode) String() string {
	switch m {
	case Plain:
		return "plain"
	case TTY:
		return "tty"
	case None:
		return "none"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}
