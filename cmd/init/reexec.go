package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/opencontainers/runc/libcontainer/exeseal"
	"golang.org/x/sys/unix"
)

// reexecSealed restarts init from a sealed in-memory copy of its own binary.
//
// libcontainer protects the host binary from containers (CVE-2019-5736) by
// starting "runc init" from a sealed copy of /proc/self/exe. Unless that is
// already a sealed memfd it makes the copy for every container: the whole
// init binary, each time, or an overlayfs mount when the overlay module is
// loaded. Running PID 1 itself from a sealed memfd pays that copy once at
// boot. If the memfd cannot be made, init is re-executed from exe.
func reexecSealed(exe string, argv, env []string) error {
	if err := execMemfd(exe, argv, env); err != nil {
		fmt.Fprintf(os.Stderr, "keel: exec from sealed memfd failed, using %s: %v\n", exe, err)
	}
	return unix.Exec(exe, argv, env)
}

func execMemfd(exe string, argv, env []string) error {
	f, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// The temporary directory is only used where memfds are missing.
	sealed, err := exeseal.CloneBinary(f, st.Size(), exe, os.TempDir())
	if err != nil {
		return err
	}
	defer sealed.Close()
	return execveat(int(sealed.Fd()), argv, env)
}

// execveat executes the file open at fd (execveat(2) with AT_EMPTY_PATH);
// x/sys/unix has no wrapper for it. It returns only on failure.
func execveat(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty := []byte{0}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd),
		uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argvp[0])),
		uintptr(unsafe.Pointer(&envp[0])),
		unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat: %w", errno)
}
