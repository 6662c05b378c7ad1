// Package testenv is how a test says what it needs from the host: a tool
// such as cpio or unsquashfs, a binary `make images` builds, a path make
// passes in the environment.
//
// Run by hand, a test whose prerequisite is missing skips with a message
// saying what to install. Under `make test` it fails instead: make
// installs every prerequisite itself and sets KEEL_TEST_STRICT=1, so a
// missing one is a fault of the set-up, and a CI run must not pass by
// skipping what it was meant to check.
//
// Not being root is not a missing prerequisite: root tests keep skipping
// without it, as the project's rules ask.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// StrictVar is the environment variable `make test` sets to 1.
const StrictVar = "KEEL_TEST_STRICT"

// Strict reports whether a missing prerequisite fails the test.
func Strict() bool { return os.Getenv(StrictVar) == "1" }

// Missing ends t for a missing prerequisite: a skip, or under `make test`
// a failure. The message says what is missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s=1: under make test every prerequisite must be there)", msg, StrictVar)
	} else {
		t.Skip(msg)
	}
}

// Tool returns the path of the executable name on PATH, or ends t
// through Missing, naming the Debian package that has it.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (Debian package %s; `make deps` installs it): %v", name, debianPackage, err)
	}
	return p
}

// File returns path if it exists, or ends t through Missing; what says
// what the file is and where it comes from.
func File(t testing.TB, path, what string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "needs %s: %v", what, err)
	}
	return path
}

// Env returns the value of the environment variable name, or ends t
// through Missing when it is unset or empty; what says who sets it.
func Env(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, "%s not set (%s)", name, what)
	}
	return v
}
