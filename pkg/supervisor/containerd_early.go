package supervisor

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keel-os/keel/pkg/bundle"
)

// containerdPaths are the host paths containerd uses, from its settings.
func (c *Containerd) paths() []string {
	c.defaults()
	return []string{c.Root, c.State, filepath.Dir(c.Address), c.Config, c.LogPath}
}

// onbootPreparesContainerd says which onboot bundle, if any, reaches a host
// path containerd uses: a bind mount of that path, of a directory above it
// or below it (config.json), or a mount or mkdir there made on the host
// before the container is created (runtime.json). Such a container may be
// preparing containerd's storage (LinuxKit images format and mount a disk
// at /var/lib/... from onboot), so containerd must not start before it has
// run. A bundle that cannot be read counts as reaching them.
func onbootPreparesContainerd(bundles []bundle.Bundle, paths []string) (name, why string) {
	for _, b := range bundles {
		spec, err := bundle.ReadConfig(b.ConfigPath())
		if err != nil {
			return b.Name, fmt.Sprintf("unreadable config: %v", err)
		}
		for _, m := range spec.Mounts {
			if m.Type != "bind" && !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
				continue
			}
			if p, ok := overlaps(m.Source, paths); ok {
				return b.Name, fmt.Sprintf("binds %s (containerd uses %s)", m.Source, p)
			}
		}
		rt, err := bundle.ReadRuntime(b.RuntimePath())
		if err != nil {
			return b.Name, fmt.Sprintf("unreadable runtime.json: %v", err)
		}
		for _, m := range rt.Mounts {
			if p, ok := overlaps(m.Destination, paths); ok {
				return b.Name, fmt.Sprintf("mounts on %s (containerd uses %s)", m.Destination, p)
			}
		}
		for _, d := range rt.Mkdir {
			if p, ok := overlaps(d, paths); ok {
				return b.Name, fmt.Sprintf("makes %s (containerd uses %s)", d, p)
			}
		}
	}
	return "", ""
}

// overlaps reports the first of paths that p is, lies under or lies above.
func overlaps(p string, paths []string) (string, bool) {
	if !filepath.IsAbs(p) {
		return "", false
	}
	p = filepath.Clean(p)
	for _, q := range paths {
		q = filepath.Clean(q)
		if p == q || under(q, p) || under(p, q) {
			return q, true
		}
	}
	return "", false
}

// under reports whether p lies strictly below dir.
func under(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}
