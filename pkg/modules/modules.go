// Package modules loads kernel modules in keel's PID 1: the drivers for the
// devices present (modalias coldplug) and the modules asked for by name,
// each after its dependencies, with finit_module. There is no modprobe,
// depmod or modules.dep in the image: what a module needs and what devices
// it drives are read from its own .modinfo (see pkg/kmod).
//
// It uses only the standard library and golang.org/x/sys.
package modules

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keel-os/keel/pkg/kmod"
	"golang.org/x/sys/unix"
)

// Loader loads the modules of one module tree, /lib/modules/<release>.
type Loader struct {
	dir  string
	tree *kmod.Tree
	log  *slog.Logger
	// patterns are every module's aliases, for modalias matching.
	patterns []alias

	// The system calls, replaced in tests.
	finit    func(path string) error
	isLoaded func(name string) bool

	// state remembers what was tried: a module that failed once is not
	// tried again, nor is anything that needs it.
	state map[string]error
}

type alias struct{ pattern, module string }

// Release is the running kernel's release (uname -r).
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// Open finds the modules of the running kernel under root (normally "/"):
// from the module index the build wrote (kmod.IndexPath) when it has this
// release, else by reading every module's .modinfo under
// /lib/modules/<release>. It returns the source it used ("index" or
// "tree") for the log. log may be nil.
func Open(root string, log *slog.Logger) (*Loader, string, error) {
	release, err := Release()
	if err != nil {
		return nil, "", err
	}
	return OpenRelease(root, release, log)
}

// OpenRelease is Open for a given kernel release.
func OpenRelease(root, release string, log *slog.Logger) (*Loader, string, error) {
	dir := filepath.Join(root, "lib/modules", release)
	tree, source, err := readTree(root, dir, release)
	if err != nil {
		return nil, "", err
	}
	l := New(tree, log)
	l.dir = dir
	l.finit = finitModule
	return l, source, nil
}

func readTree(root, dir, release string) (*kmod.Tree, string, error) {
	if f, err := os.Open(filepath.Join(root, kmod.IndexPath)); err == nil {
		ix, err := kmod.ReadIndex(f)
		f.Close()
		if err != nil {
			return nil, "", err
		}
		if k, ok := ix.Kernel(release); ok {
			return k.Tree(), "index", nil
		}
	}
	tree, err := kmod.LoadTree(os.DirFS(dir))
	if err != nil {
		return nil, "", fmt.Errorf("modules in %s: %w", dir, err)
	}
	return tree, "tree", nil
}

// New makes a loader for tree. Until Open sets them, loading a module is an
// error and nothing counts as loaded; tests replace both.
func New(tree *kmod.Tree, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loader{
		tree:     tree,
		log:      log,
		finit:    func(string) error { return errors.ErrUnsupported },
		isLoaded: loadedInSysfs,
		state:    map[string]error{},
	}
	for _, m := range tree.Modules() {
		for _, a := range m.Info.Aliases {
			l.patterns = append(l.patterns, alias{a, m.Name})
		}
	}
	return l
}

// Result is what one Load or Coldplug did.
type Result struct {
	Loaded  []string         // modules loaded now, in load order
	Failed  map[string]error // modules that failed, with why
	Unknown []string         // names asked for that the tree does not have
	Took    time.Duration
}

func (r *Result) fail(name string, err error) {
	if r.Failed == nil {
		r.Failed = map[string]error{}
	}
	r.Failed[name] = err
}

// Load loads the named modules (or literal aliases) and their
// dependencies, dependencies first. A module that fails is logged and the
// rest go on; what depends on it is not tried.
func (l *Loader) Load(names ...string) Result {
	start := time.Now()
	var r Result
	for _, n := range names {
		l.loadOne(n, &r)
	}
	r.Took = time.Since(start)
	return r
}

func (l *Loader) loadOne(name string, r *Result) {
	mods, err := l.tree.Closure(name)
	if err != nil {
		if errors.Is(err, kmod.ErrUnknownModule) {
			r.Unknown = append(r.Unknown, name)
			return
		}
		r.fail(name, err)
		return
	}
	for _, m := range mods {
		if err, tried := l.state[m.Name]; tried {
			if err != nil {
				// A dependency failed: so does everything above it.
				l.failDependent(r, name, m.Name, err)
				return
			}
			continue
		}
		if l.isLoaded(m.Name) {
			l.state[m.Name] = nil
			continue
		}
		err := l.finit(filepath.Join(l.dir, m.Path))
		if errors.Is(err, unix.EEXIST) {
			err = nil
		}
		l.state[m.Name] = err
		if err != nil {
			l.log.Warn("module failed", "module", m.Name, "err", err)
			r.fail(m.Name, err)
			if m.Name != kmod.NormalizeName(name) {
				l.failDependent(r, name, m.Name, err)
			}
			return
		}
		l.log.Debug("module loaded", "module", m.Name)
		r.Loaded = append(r.Loaded, m.Name)
	}
}

func (l *Loader) failDependent(r *Result, name, dep string, err error) {
	err = fmt.Errorf("needs %s: %w", dep, err)
	l.log.Warn("module not loaded", "module", name, "err", err)
	r.fail(name, err)
}

// maxColdplugRounds bounds the rescans: loading a bus driver (virtio_pci)
// makes new devices (virtio0) that want drivers of their own.
const maxColdplugRounds = 8

// Coldplug loads the drivers for the devices the kernel knows under sys
// (normally /sys): each device's modalias is matched against the modules'
// aliases. Drivers create devices of their own (virtio_pci makes the
// virtio devices that virtio_net drives), so it scans again after loading
// until a scan finds nothing new.
func (l *Loader) Coldplug(sys string) (Result, error) {
	start := time.Now()
	var r Result
	seen := map[string]bool{}
	sc := newScanner(sys)
	for round := 0; round < maxColdplugRounds; round++ {
		scan := time.Now()
		aliases, err := sc.scan()
		if err != nil {
			r.Took = time.Since(start)
			return r, err
		}
		l.log.Debug("modules: scanned", "round", round, "modaliases", len(aliases), "took", time.Since(scan).Round(time.Millisecond))
		var want []string
		for _, a := range aliases {
			if seen[a] {
				continue
			}
			seen[a] = true
			for _, m := range l.Match(a) {
				if _, tried := l.state[m]; !tried {
					want = append(want, m)
				}
			}
		}
		if len(want) == 0 {
			break
		}
		sort.Strings(want)
		for _, m := range uniq(want) {
			l.loadOne(m, &r)
		}
	}
	r.Took = time.Since(start)
	return r, nil
}

func uniq(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Match returns the modules with an alias matching modalias, sorted.
func (l *Loader) Match(modalias string) []string {
	var out []string
	for _, a := range l.patterns {
		if kmod.MatchAlias(a.pattern, modalias) {
			out = append(out, a.module)
		}
	}
	sort.Strings(out)
	return uniq(out)
}

// Modaliases returns the distinct modaliases of the devices under sys
// (normally /sys), sorted: those of every device on a bus (the ones
// drivers bind to) and the CPU's (for its feature modules). Class devices
// are left out: no driver binds to them (input handlers such as evdev are
// loaded by name). This reads far less than a walk of /sys/devices, which
// under emulation costs hundreds of milliseconds a pass.
func Modaliases(sys string) ([]string, error) {
	return newScanner(sys).scan()
}

// scanner reads modaliases, each device once: a rescan after loading
// drivers reads only the devices that appeared since.
type scanner struct {
	sys  string
	read map[string]bool // device paths already read
}

func newScanner(sys string) *scanner { return &scanner{sys: sys, read: map[string]bool{}} }

// scan returns the modaliases of the devices not read before, sorted and
// without duplicates.
func (s *scanner) scan() ([]string, error) {
	buses, err := os.ReadDir(filepath.Join(s.sys, "bus"))
	if err != nil {
		return nil, fmt.Errorf("scan for modaliases: %w", err)
	}
	devices := []string{filepath.Join(s.sys, "devices/system/cpu")}
	for _, b := range buses {
		dir := filepath.Join(s.sys, "bus", b.Name(), "devices")
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			devices = append(devices, filepath.Join(dir, e.Name()))
		}
	}
	var out []string
	for _, d := range devices {
		if s.read[d] {
			continue
		}
		s.read[d] = true
		b, err := os.ReadFile(filepath.Join(d, "modalias"))
		if err != nil {
			continue // none, or the device went away
		}
		if a := strings.TrimSpace(string(b)); a != "" {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return uniq(out), nil
}

// finitModule loads the module file at path. A module's own parameters are
// not set: the lean set needs none.
func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = unix.FinitModule(int(f.Fd()), "", 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// loadedInSysfs reports whether the kernel has a module called name loaded
// (or built in, when it has parameters): /sys/module/<name> exists.
func loadedInSysfs(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/module", name))
	return err == nil
}
