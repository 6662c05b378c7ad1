package kmod

import (
	"fmt"
	"strings"
)

// File is a file of the guest's root, at Path relative to it (no leading
// "/"), or relative to a module tree where a function says so.
type File struct {
	Path string
	Data []byte
}

// DepmodFiles are what depmod writes into a module tree, made from the
// tree instead of by running depmod, so that a guest's own modprobe finds
// each module, its dependencies, the modules an alias or an exported
// symbol stands for, and the softdeps modules declare. busybox's modprobe
// reads the text files (modules.dep, modules.alias, modules.symbols);
// kmod's reads modules.dep.bin, modules.alias.bin, modules.symbols.bin and
// modules.builtin.bin, and modules.softdep as configuration. Paths are
// relative to the tree's root, lib/modules/<release>.
//
// Modules are listed in modules.order order (SetOrder), the rest after by
// path; a module's position is also its priority among the modules that
// share an alias. Every file is the same bytes for the same tree.
func (t *Tree) DepmodFiles() []File {
	mods := t.ordered()
	var dep, alias, softdep, symbols strings.Builder
	alias.WriteString("# Aliases extracted from modules themselves.\n")
	softdep.WriteString("# Soft dependencies extracted from modules themselves.\n")
	symbols.WriteString("# Aliases for symbols, used by symbol_request().\n")
	var depBin, aliasBin, symbolsBin, builtinBin binIndex
	for i, m := range mods {
		prio := uint32(i)
		line := m.Path + ":"
		for _, d := range t.dependencyPaths(m) {
			line += " " + d
		}
		dep.WriteString(line + "\n")
		depBin.add(m.Name, line, prio)
		for _, a := range m.Info.Aliases {
			fmt.Fprintf(&alias, "alias %s %s\n", a, m.Name)
			if key, ok := normalizeAlias(a); ok {
				aliasBin.add(key, m.Name, prio)
			}
		}
		if len(m.Info.SoftPre) > 0 || len(m.Info.SoftPost) > 0 {
			fmt.Fprintf(&softdep, "softdep %s", m.Name)
			if len(m.Info.SoftPre) > 0 {
				fmt.Fprintf(&softdep, " pre: %s", strings.Join(m.Info.SoftPre, " "))
			}
			if len(m.Info.SoftPost) > 0 {
				fmt.Fprintf(&softdep, " post: %s", strings.Join(m.Info.SoftPost, " "))
			}
			softdep.WriteString("\n")
		}
		for _, s := range m.Info.Exports {
			fmt.Fprintf(&symbols, "alias symbol:%s %s\n", s, m.Name)
			symbolsBin.add("symbol:"+s, m.Name, prio)
		}
	}
	for b := range t.builtin {
		// A built-in module is found with no value to speak of: kmod's
		// modprobe then has nothing to load and succeeds.
		builtinBin.add(b, "", 0)
	}
	return []File{
		{"modules.dep", []byte(dep.String())},
		{"modules.dep.bin", depBin.bytes()},
		{"modules.alias", []byte(alias.String())},
		{"modules.alias.bin", aliasBin.bytes()},
		{"modules.softdep", []byte(softdep.String())},
		{"modules.symbols", []byte(symbols.String())},
		{"modules.symbols.bin", symbolsBin.bytes()},
		{"modules.builtin.bin", builtinBin.bytes()},
	}
}

// dependencyPaths are the paths of every module m needs, directly or not,
// in modules.dep's order: the reverse of a load order, so that the last
// one needs none of the others (busybox's modprobe loads a line from its
// end). A dependency that is built in, or missing from the tree, is left
// out, as depmod leaves it.
func (t *Tree) dependencyPaths(m *Module) []string {
	var load []string
	seen := map[string]bool{m.Name: true}
	var visit func(m *Module)
	visit = func(m *Module) {
		for _, d := range m.Info.Depends {
			dm, ok := t.modules[NormalizeName(d)]
			if !ok || seen[dm.Name] {
				continue
			}
			seen[dm.Name] = true
			visit(dm)
			load = append(load, dm.Path)
		}
	}
	visit(m)
	for i, j := 0, len(load)-1; i < j; i, j = i+1, j-1 {
		load[i], load[j] = load[j], load[i]
	}
	return load
}

// normalizeAlias is an alias as kmod keys it, and looks a name up: dashes
// become underscores except inside a [...] class. ok is false for an alias
// with a ']' outside a class or an unclosed '[', which kmod refuses too.
func normalizeAlias(a string) (string, bool) {
	b := []byte(a)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '-':
			b[i] = '_'
		case ']':
			return "", false
		case '[':
			j := strings.IndexByte(a[i:], ']')
			if j < 0 {
				return "", false
			}
			i += j
		}
	}
	return string(b), true
}
