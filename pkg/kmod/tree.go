package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// Module is one module file of a module tree.
type Module struct {
	// Name is the kernel's name for the module, from its file name (as
	// depmod does; the .modinfo name, where present, agrees).
	Name string
	// Path is the file's path relative to the tree root
	// (lib/modules/<release>), e.g. "kernel/fs/overlayfs/overlay.ko".
	Path string
	// Size is the file's size in bytes.
	Size int64
	Info *Info
}

// Tree is the module tree of one kernel release: every module file under
// lib/modules/<release>, plus the names of the modules built into the
// kernel.
type Tree struct {
	modules map[string]*Module
	builtin map[string]bool
	// aliases maps a literal alias (no glob characters) to the modules that
	// declare it; "crc32c" is one, as softdeps use such names.
	aliases map[string][]string
	// order is each module's position in modules.order, by path (SetOrder).
	order map[string]int
}

// SetOrder records the order of modules.order (module paths, one a line,
// as the kernel's build wrote them): depmod lists modules in that order,
// and where several modules answer to one alias, the first one is
// preferred. Modules it does not list come after, by path.
func (t *Tree) SetOrder(paths []string) {
	t.order = make(map[string]int, len(paths))
	for i, p := range paths {
		p = strings.TrimSpace(p)
		// modules.order names the .ko of a module whose file may be
		// compressed (.ko.xz) in the tree.
		if _, seen := t.order[p]; p != "" && !seen {
			t.order[p] = i
		}
	}
}

// ordered returns the modules in modules.order order (SetOrder), the rest
// after them by path.
func (t *Tree) ordered() []*Module {
	ms := t.Modules()
	pos := func(m *Module) (int, bool) {
		if i, ok := t.order[m.Path]; ok {
			return i, true
		}
		for _, ext := range moduleExts[1:] {
			if base, ok := strings.CutSuffix(m.Path, ext); ok {
				i, ok := t.order[base+".ko"]
				return i, ok
			}
		}
		return 0, false
	}
	sort.SliceStable(ms, func(i, j int) bool {
		a, aok := pos(ms[i])
		b, bok := pos(ms[j])
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		}
		return false // both unlisted: by path, as Modules sorted them
	})
	return ms
}

// NewTree makes a tree of the given modules and built-in module names. When
// two modules have the same name, one under updates/ wins, as with depmod's
// default search order; otherwise the first one given wins.
func NewTree(modules []*Module, builtin []string) *Tree {
	t := &Tree{
		modules: make(map[string]*Module, len(modules)),
		builtin: make(map[string]bool, len(builtin)),
		aliases: make(map[string][]string),
	}
	for _, m := range modules {
		if old, dup := t.modules[m.Name]; dup && !(strings.HasPrefix(m.Path, "updates/") && !strings.HasPrefix(old.Path, "updates/")) {
			continue
		}
		t.modules[m.Name] = m
	}
	for _, m := range t.Modules() {
		for _, a := range m.Info.Aliases {
			if !strings.ContainsAny(a, "*?[") {
				t.aliases[a] = append(t.aliases[a], m.Name)
			}
		}
	}
	for _, b := range builtin {
		t.builtin[NormalizeName(b)] = true
	}
	return t
}

// LoadTree reads the module tree rooted at fsys, which is a kernel's
// lib/modules/<release> directory: the .modinfo of every .ko file, and
// modules.builtin if present.
func LoadTree(fsys fs.FS) (*Tree, error) {
	var modules []*Module
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !IsModuleFile(p) {
			return nil
		}
		if !strings.HasSuffix(p, ".ko") {
			return fmt.Errorf("module %s: compressed modules are not supported", p)
		}
		m, err := readModule(fsys, p)
		if err != nil {
			return err
		}
		modules = append(modules, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read module tree: %w", err)
	}
	builtin, err := readBuiltin(fsys)
	if err != nil {
		return nil, err
	}
	order, err := readList(fsys, "modules.order")
	if err != nil {
		return nil, err
	}
	t := NewTree(modules, builtin)
	t.SetOrder(order)
	return t, nil
}

func readModule(fsys fs.FS, p string) (*Module, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// debug/elf wants random access; an os.File has it, other file systems
	// get the file read into memory (modules are small).
	ra, ok := f.(io.ReaderAt)
	if !ok {
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read module %s: %w", p, err)
		}
		ra = bytes.NewReader(b)
	}
	info, err := ReadInfo(ra)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", p, err)
	}
	if info.Exports, err = ReadExports(ra); err != nil {
		return nil, fmt.Errorf("module %s: %w", p, err)
	}
	return &Module{Name: NormalizeName(p), Path: p, Size: st.Size(), Info: info}, nil
}

// readBuiltin reads modules.builtin: one path of a built-in module a line.
func readBuiltin(fsys fs.FS) ([]string, error) {
	lines, err := readList(fsys, "modules.builtin")
	for i, l := range lines {
		lines[i] = NormalizeName(l)
	}
	return lines, err
}

// readList reads the non-empty lines of the file name, trimmed; a missing
// file is an empty list.
func readList(fsys fs.FS, name string) ([]string, error) {
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return lines, nil
}

// Module returns the module called name (dashes or underscores).
func (t *Tree) Module(name string) (*Module, bool) {
	m, ok := t.modules[NormalizeName(name)]
	return m, ok
}

// IsBuiltin reports whether the module called name is built into the kernel.
func (t *Tree) IsBuiltin(name string) bool {
	return t.builtin[NormalizeName(name)]
}

// Modules returns every module of the tree, sorted by path.
func (t *Tree) Modules() []*Module {
	out := make([]*Module, 0, len(t.modules))
	for _, m := range t.modules {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ErrUnknownModule is returned for a name that is neither a module of the
// tree, nor built in, nor a literal alias of one.
var ErrUnknownModule = errors.New("no such module")

// Resolve finds the module a name stands for: a module name, or failing
// that a literal alias (e.g. "crc32c", "fs-overlay"). It returns "", true for
// a module built into the kernel, which needs no loading.
func (t *Tree) Resolve(name string) (mod string, builtin bool, err error) {
	n := NormalizeName(name)
	if _, ok := t.modules[n]; ok {
		return n, false, nil
	}
	if t.builtin[n] {
		return "", true, nil
	}
	if mods := t.aliases[name]; len(mods) > 0 {
		// Several modules may declare one alias (crc32c: the generic one and
		// the CPU-specific one); any of them will do, and a sorted choice
		// keeps the result stable.
		return mods[0], false, nil
	}
	return "", false, fmt.Errorf("%s: %w", name, ErrUnknownModule)
}

// Closure returns the modules that loading names needs, in an order they
// can be loaded: every module after the modules it depends on. Names may be
// module names or literal aliases; built-in modules are left out, as are
// softdeps that resolve to nothing. An unknown name is an error.
func (t *Tree) Closure(names ...string) ([]*Module, error) {
	var (
		order []*Module
		state = map[string]int{} // 1: being visited, 2: done
		visit func(name string, hard bool) error
	)
	visit = func(name string, hard bool) error {
		mod, builtin, err := t.Resolve(name)
		if err != nil {
			if hard {
				return err
			}
			return nil
		}
		if builtin || state[mod] != 0 {
			// Done already, or a cycle, which only softdeps can make: the
			// module already on the path is loaded first.
			return nil
		}
		state[mod] = 1
		m := t.modules[mod]
		for _, d := range m.Info.Depends {
			if err := visit(d, true); err != nil {
				return fmt.Errorf("%s depends on %w", mod, err)
			}
		}
		for _, d := range m.Info.SoftPre {
			if err := visit(d, false); err != nil {
				return err
			}
		}
		state[mod] = 2
		order = append(order, m)
		for _, d := range m.Info.SoftPost {
			if err := visit(d, false); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n, true); err != nil {
			return nil, err
		}
	}
	return order, nil
}
