package containerdcmd

import (
	"testing"

	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// Any name but containerd's, ctr's and the shim's runs nothing: PID 1's
// binary is PID 1 then, and must not find the plugin registry emptied.
func TestRunOtherNameRunsNothing(t *testing.T) {
	before := len(registry.Graph(func(*plugin.Registration) bool { return false }))
	for _, name := range []string{"init", "keel", "dockerd", ""} {
		if _, ok := Run(name); ok {
			t.Errorf("Run(%q) ran something", name)
		}
	}
	if after := len(registry.Graph(func(*plugin.Registration) bool { return false })); after != before {
		t.Errorf("registry had %d plugins, then %d", before, after)
	}
}

// keepPlugins leaves the shim its task service alone, and containerd
// everything but.
func TestKeepPlugins(t *testing.T) {
	all := registry.Graph(func(*plugin.Registration) bool { return false })
	var shim, others int
	for _, r := range all {
		if shimPlugins[r.URI()] {
			shim++
		} else {
			others++
		}
	}
	if shim != len(shimPlugins) || others < 30 {
		t.Fatalf("registered: %d shim plugins, %d others; want %d and containerd's (30 or more)", shim, others, len(shimPlugins))
	}
	t.Cleanup(func() {
		registry.Reset()
		for i := range all {
			registry.Register(&all[i])
		}
	})
	keepPlugins(func(uri string) bool { return shimPlugins[uri] })
	got := registry.Graph(func(*plugin.Registration) bool { return false })
	if len(got) != len(shimPlugins) || !shimPlugins[got[0].URI()] {
		t.Fatalf("after keeping the shim's: %d plugins (%v)", len(got), got)
	}
}

// The servers keel's containerd config gives no address, and so never
// start, are not in the binary.
func TestNoAddresslessServers(t *testing.T) {
	for _, r := range registry.Graph(func(*plugin.Registration) bool { return false }) {
		switch r.URI() {
		case "io.containerd.server.v1.debug", "io.containerd.server.v1.metrics", "io.containerd.http.v1.pprof":
			t.Errorf("%s is registered", r.URI())
		}
	}
}
