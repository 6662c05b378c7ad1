package supervisor

import (
	"os"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's constructor runs before the Go runtime in "init" children
	// and joins/creates the container's namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// TestMain lets the test binary serve as libcontainer's "runc init": it
// re-executes /proc/self/exe with "init" to set up each container.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init() // never returns
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates containers, mounts and namespaces")
	}
}
