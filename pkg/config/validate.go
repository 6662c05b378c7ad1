package config

import (
	"fmt"
	"os"
	"strings"
)

// Validate checks the configuration as a whole: what a build needs, names
// and paths that must be unique (service names, not onboot or onshutdown
// ones: their bundles are NNN-name, as in LinuxKit), the names a uid or gid refers to, the
// volumes binds refer to, the services depends_on refers to (and that they
// form no cycle), and file sources that must exist. Parse has
// already checked each entry on its own.
func (c *Config) Validate() error {
	var errs Errors
	add := func(p Pos, field, format string, args ...any) {
		errs = append(errs, &Error{Pos: p, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	top := Pos{File: c.File, Line: 1, Column: 1}
	if c.Kernel.Image == "" {
		add(top, "kernel", "a kernel image is required")
	}
	if len(c.Init) == 0 {
		add(top, "init", "at least one init image is required")
	}
	ids := c.IDs()
	vols := map[string]Pos{}
	for i, v := range c.Volumes {
		if p, dup := vols[v.Name]; dup {
			add(v.Pos, fmt.Sprintf("volumes[%d].name", i), "duplicate volume name %q (first used at %s)", v.Name, p)
			continue
		}
		vols[v.Name] = v.Pos
	}
	owners := c.idOwners()
	checkID := func(id *ID, field string) {
		if id == nil {
			return
		}
		if _, err := id.Resolve(ids); err != nil {
			add(id.Pos, field, "%v", err)
			return
		}
		if o := owners[id.Name]; len(o) > 1 {
			c.Warnings = append(c.Warnings, &Error{Pos: id.Pos, Field: field,
				Msg: fmt.Sprintf("%q names %d entries (%s): it is the id of the last, %s, as in LinuxKit", id.Name, len(o), strings.Join(o, ", "), o[len(o)-1])})
		}
	}
	for _, l := range []struct {
		field  string
		images []Image
	}{{"onboot", c.Onboot}, {"onshutdown", c.Onshutdown}, {"services", c.Services}} {
		first := map[string]Pos{}
		for i, img := range l.images {
			f := fmt.Sprintf("%s[%d]", l.field, i)
			// Services run side by side, each a containerd container
			// named after its entry; onboot and onshutdown entries run
			// one at a time from NNN-name bundles, so LinuxKit's own
			// examples list two "format" or two "mount" entries.
			if p, dup := first[img.Name]; dup && l.field == "services" {
				add(img.NamePos, f+".name", "duplicate name %q (first used at %s)", img.Name, p)
			} else if !dup {
				first[img.Name] = img.NamePos
			}
			checkID(img.UID, f+".uid")
			checkID(img.GID, f+".gid")
			for j := range img.AdditionalGids {
				checkID(&img.AdditionalGids[j], fmt.Sprintf("%s.additionalGids[%d]", f, j))
			}
			for _, b := range append(append([]string{}, img.Binds...), img.BindsAdd...) {
				src, _, _, err := ParseBind(b)
				if err == nil && src[0] != '/' {
					if _, ok := vols[src]; !ok {
						add(img.Pos, f, "bind %q names volume %q, which `volumes` does not define", b, src)
					}
				}
			}
		}
	}
	_, depErrs := c.dependencies(c.Services, false)
	errs = append(errs, depErrs...)
	paths := map[string]Pos{}
	for i, f := range c.Files {
		field := fmt.Sprintf("files[%d]", i)
		if p, dup := paths[f.Path]; dup {
			add(f.Pos, field+".path", "duplicate path %q (first used at %s)", f.Path, p)
		} else {
			paths[f.Path] = f.Pos
		}
		checkID(&f.UID, field+".uid")
		checkID(&f.GID, field+".gid")
		if f.Source != "" {
			src, err := ExpandHome(f.Source)
			var info os.FileInfo
			if err == nil {
				info, err = os.Stat(src)
			}
			switch {
			case err != nil && !f.Optional:
				add(f.Pos, field+".source", "%v (add `optional: true` to skip a missing source)", err)
			case err == nil:
				if err := checkSource(src, info); err != nil {
					add(f.SourcePos, field+".source", "%v", err)
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
