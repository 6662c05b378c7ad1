package config

import "fmt"

// Validate checks the configuration as a whole: what a build needs, and
// names and paths that must be unique. Parse has already checked each entry
// on its own.
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
	for _, l := range []struct {
		field  string
		images []Image
	}{{"onboot", c.Onboot}, {"onshutdown", c.Onshutdown}, {"services", c.Services}} {
		first := map[string]Pos{}
		for i, img := range l.images {
			if p, dup := first[img.Name]; dup {
				add(img.NamePos, fmt.Sprintf("%s[%d].name", l.field, i),
					"duplicate name %q (first used at line %d)", img.Name, p.Line)
				continue
			}
			first[img.Name] = img.NamePos
		}
	}
	paths := map[string]Pos{}
	for i, f := range c.Files {
		if p, dup := paths[f.Path]; dup {
			add(f.Pos, fmt.Sprintf("files[%d].path", i), "duplicate path %q (first used at line %d)", f.Path, p.Line)
			continue
		}
		paths[f.Path] = f.Pos
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
