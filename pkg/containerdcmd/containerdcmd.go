// Package containerdcmd runs containerd, ctr or the runc v2 shim: keel's
// PID 1 binary carries all three and runs as the one it is named, as
// busybox and k3s do. keel/init installs it under their names as hard
// links to /init.
//
// Why one binary: containerd, ctr and the shim are separate Go programs
// of 31, 20 and 14 MB, and PID 1 is 22 MB; they share most of their code
// (the Go runtime, grpc, protobuf, containerd's API and client). In an
// initrd every byte is inflated by the kernel at boot and then sits in
// RAM for the life of the VM. One binary is 34 MB for all four. Under
// emulation it also starts faster: the code PID 1 has run is already
// translated when containerd and the shim run it.
//
// Hard links, not symlinks: the shim starts its long-running copy through
// os.Executable, which reads /proc/self/exe. For a symlink that is the
// target's name, and the copy would start as PID 1; a hard link keeps the
// name it was run as.
//
// The plugins are imported one by one below rather than through
// containerd's cmd/containerd/builtins, whose set depends on build tags:
// keel's binary is then the same however it is built, tests included.
// The set is builtins' with the tags no_cri, no_devmapper, no_zfs,
// no_btrfs and no_tracing, less:
//   - the blockfile and erofs snapshotters, which keel's containerd config
//     disables anyway, and erofs's differ and mount handlers, which only
//     serve erofs layers;
//   - NRI, the hook for Kubernetes' resource plugins. It is CRI's, which
//     keel leaves out, and it brings a WebAssembly runtime (wazero);
//   - the debug server (pprof, expvar) and the metrics server: keel's
//     containerd config gives neither an address, so they never started.
//
// Those cuts take 5.2 MB off the binary; the two servers' 0.84 MB of it
// also took 5% of the package init that every start of the binary pays.
// containerd and the shim each load every plugin registered, so each first
// keeps only its own (keepPlugins).
package containerdcmd

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/cmd/containerd/command"
	"github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	// The shim's task service.
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin"

	// containerd's plugins.
	_ "github.com/containerd/containerd/api/types/runc/options"
	_ "github.com/containerd/containerd/v2/core/metrics/cgroups"
	_ "github.com/containerd/containerd/v2/core/metrics/cgroups/v2"
	_ "github.com/containerd/containerd/v2/core/runtime/v2"
	_ "github.com/containerd/containerd/v2/plugins/content/local/plugin"
	_ "github.com/containerd/containerd/v2/plugins/diff/walking/plugin"
	_ "github.com/containerd/containerd/v2/plugins/events"
	_ "github.com/containerd/containerd/v2/plugins/gc"
	_ "github.com/containerd/containerd/v2/plugins/imageverifier"
	_ "github.com/containerd/containerd/v2/plugins/leases"
	_ "github.com/containerd/containerd/v2/plugins/metadata"
	_ "github.com/containerd/containerd/v2/plugins/mount"
	_ "github.com/containerd/containerd/v2/plugins/restart"
	_ "github.com/containerd/containerd/v2/plugins/sandbox"
	_ "github.com/containerd/containerd/v2/plugins/server/grpc"
	_ "github.com/containerd/containerd/v2/plugins/server/ttrpc"
	_ "github.com/containerd/containerd/v2/plugins/services/containers"
	_ "github.com/containerd/containerd/v2/plugins/services/content"
	_ "github.com/containerd/containerd/v2/plugins/services/diff"
	_ "github.com/containerd/containerd/v2/plugins/services/events"
	_ "github.com/containerd/containerd/v2/plugins/services/healthcheck"
	_ "github.com/containerd/containerd/v2/plugins/services/images"
	_ "github.com/containerd/containerd/v2/plugins/services/introspection"
	_ "github.com/containerd/containerd/v2/plugins/services/leases"
	_ "github.com/containerd/containerd/v2/plugins/services/mounts"
	_ "github.com/containerd/containerd/v2/plugins/services/namespaces"
	_ "github.com/containerd/containerd/v2/plugins/services/opt"
	_ "github.com/containerd/containerd/v2/plugins/services/sandbox"
	_ "github.com/containerd/containerd/v2/plugins/services/snapshots"
	_ "github.com/containerd/containerd/v2/plugins/services/streaming"
	_ "github.com/containerd/containerd/v2/plugins/services/tasks"
	_ "github.com/containerd/containerd/v2/plugins/services/transfer"
	_ "github.com/containerd/containerd/v2/plugins/services/version"
	_ "github.com/containerd/containerd/v2/plugins/services/warning"
	_ "github.com/containerd/containerd/v2/plugins/snapshots/native/plugin"
	_ "github.com/containerd/containerd/v2/plugins/snapshots/overlay/plugin"
	_ "github.com/containerd/containerd/v2/plugins/streaming"
	_ "github.com/containerd/containerd/v2/plugins/transfer"
)

// Names are the programs Run runs, by the name they are run as.
var Names = []string{"containerd", "ctr", "containerd-shim-runc-v2"}

// Run runs the program called name with os.Args and returns its exit
// code; ok is false, and nothing has run, when name is none of Names.
func Run(name string) (code int, ok bool) {
	ctx := context.Background()
	var err error
	switch name {
	case "containerd":
		keepPlugins(func(uri string) bool { return !shimPlugins[uri] })
		err = command.App().Run(ctx, os.Args)
	case "ctr":
		err = app.New().Run(ctx, os.Args)
	case "containerd-shim-runc-v2":
		keepPlugins(func(uri string) bool { return shimPlugins[uri] })
		shim.RunShim(ctx, manager.NewShimManager("io.containerd.runc.v2")) // exits itself on error
		return 0, true
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1, true
	}
	return 0, true
}

// shimPlugins are the plugins of the runc shim: what its own imports
// register (task/plugin). Everything else registered is containerd's.
var shimPlugins = map[string]bool{"io.containerd.ttrpc.v1.task": true}

// keepPlugins empties the plugin registry but for the registrations keep
// says yes to, registered again in their dependency order.
func keepPlugins(keep func(uri string) bool) {
	kept := registry.Graph(func(r *plugin.Registration) bool { return !keep(r.URI()) })
	registry.Reset()
	for i := range kept {
		registry.Register(&kept[i])
	}
}
