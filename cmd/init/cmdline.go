package main

import (
	"os"
	"strings"
)

// The kernel command line words PID 1 reads. Words with a dot are module
// parameters to the kernel, which keeps them from init's argv and
// environment, so /proc/cmdline is read; KEEL_* words without a dot reach
// init's environment and are read there.
//
//	keel.oneshot        power off once the services run (make demo without
//	                    a terminal, the boot tests)
//	keel.console=off    no shell on the serial console
//	keel.modules=a,b    load these kernel modules too, with their
//	                    dependencies
//	KEEL_ROOT=tmpfs     leave the initramfs by copying it into a tmpfs
//	                    rather than binding it (slower; a limitable tmpfs)
//	KEEL_LOG=debug      debug lines on the console
//	KEEL_INIT_ANY_PID=1 run as PID 1 would, though not PID 1 (tests only)
const (
	paramOneshot = "keel.oneshot"
	paramConsole = "keel.console"
	paramModules = "keel.modules"
)

// cmdline is the kernel command line, split into words.
type cmdline []string

// readCmdline reads /proc/cmdline; an unreadable one is empty.
func readCmdline() cmdline {
	b, _ := os.ReadFile("/proc/cmdline")
	return strings.Fields(string(b))
}

// Flag reports whether the bare word name (or name=1) is there.
func (c cmdline) Flag(name string) bool {
	v, ok := c.Value(name)
	return ok && (v == "" || v == "1")
}

// Value returns the value of name=value (the last one, as the kernel
// does) and whether the word is there at all.
func (c cmdline) Value(name string) (string, bool) {
	val, found := "", false
	for _, w := range c {
		if w == name {
			val, found = "", true
		} else if v, ok := strings.CutPrefix(w, name+"="); ok {
			val, found = v, true
		}
	}
	return val, found
}
