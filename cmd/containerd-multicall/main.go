// Command containerd-multicall is containerd, ctr and the runc v2 shim in
// one binary, which keel/init installs under the three names as hard links.
// It picks the program from the name it was run as, as busybox and k3s do.
//
// Why: the three are separate Go programs of 31, 20 and 14 MB that share
// most of their code (grpc, protobuf, containerd's API and client). In an
// initrd every byte is inflated by the kernel at boot and then sits in RAM
// for the life of the VM; one binary is about 34 MB for all three.
//
// Hard links, not symlinks: the shim starts its long-running copy through
// os.Executable, which reads /proc/self/exe. For a symlink that is the
// target's name, and the copy would start as containerd; a hard link keeps
// the name it was run as.
//
// The plugins of all three are registered in one registry, by the imports
// below. containerd and the shim each load every plugin registered, so each
// first keeps only its own (ownPlugins): the shim's is its task service,
// which is all containerd-shim-runc-v2 built alone registers with these tags.
//
// It is built from keel's own module (so the containerd version is the one
// in keel's go.mod, which tools/mkimages checks against versions.env), with
// the build tags tools/mkimages gives containerd.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/cmd/containerd/command"
	"github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	// containerd's plugins (less those the build tags leave out), and the
	// shim's task service.
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin"
	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
)

func main() {
	ctx := context.Background()
	name := filepath.Base(os.Args[0])
	var err error
	switch name {
	case "containerd":
		keepPlugins(func(uri string) bool { return !shimPlugins[uri] })
		err = command.App().Run(ctx, os.Args)
	case "ctr":
		err = app.New().Run(ctx, os.Args)
	case "containerd-shim-runc-v2":
		keepPlugins(func(uri string) bool { return shimPlugins[uri] })
		shim.RunShim(ctx, manager.NewShimManager("io.containerd.runc.v2"))
		return
	default:
		fmt.Fprintf(os.Stderr, "containerd-multicall: run as %q: run it as containerd, ctr or containerd-shim-runc-v2 (hard links to it)\n", name)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
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
