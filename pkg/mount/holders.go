package mount

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Holder is a process that keeps a mount busy, and how: "cwd", "root",
// "exe", "fd 3 /var/log/x.log" or "map /var/lib/x.so".
type Holder struct {
	Pid  int
	Comm string
	Uses []string
}

func (h Holder) String() string {
	return fmt.Sprintf("%d(%s): %s", h.Pid, h.Comm, strings.Join(h.Uses, ", "))
}

// maxUses bounds what is listed per process: a log line, not a dump.
const maxUses = 4

// Holders lists the processes under procRoot (normally /proc) with a file
// open, a working directory, a root, an executable or a mapping under the
// mount point target, sorted by pid. Paths are compared as the kernel
// prints them, so a file deleted while open (" (deleted)") still counts.
// Processes that vanish while they are looked at, and kernel threads, are
// skipped.
func Holders(procRoot, target string) ([]Holder, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	target = filepath.Clean(target)
	var out []Holder
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		var uses []string
		add := func(use string) {
			if len(uses) < maxUses {
				uses = append(uses, use)
			} else if len(uses) == maxUses {
				uses = append(uses, "...")
			}
		}
		// A kernel thread has no executable and holds nothing through its
		// fds or directories; skipping it first keeps the scan cheap (a
		// VM has far more kernel threads than processes at shutdown).
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil {
			continue
		}
		for _, l := range []string{"cwd", "root"} {
			if p, err := os.Readlink(filepath.Join(dir, l)); err == nil && under(p, target) {
				add(l)
			}
		}
		if under(exe, target) {
			add("exe")
		}
		if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
			sort.Slice(fds, func(i, j int) bool { return fdNum(fds[i].Name()) < fdNum(fds[j].Name()) })
			for _, fd := range fds {
				if p, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && under(p, target) {
					add("fd " + fd.Name() + " " + p)
				}
			}
		}
		for _, p := range mappedFiles(filepath.Join(dir, "maps")) {
			if under(p, target) {
				add("map " + p)
			}
		}
		if len(uses) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, Holder{Pid: pid, Comm: strings.TrimSpace(string(comm)), Uses: uses})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out, nil
}

func fdNum(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// under reports whether path p, as /proc prints it, is target or below it.
func under(p, target string) bool {
	p = strings.TrimSuffix(p, " (deleted)")
	if !strings.HasPrefix(p, "/") {
		return false // socket:[123], pipe:[456], anon_inode:...
	}
	if target == "/" {
		return true
	}
	return p == target || strings.HasPrefix(p, target+"/")
}

// mappedFiles returns the distinct files mapped in a maps file.
func mappedFiles(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname: the path is the sixth
		// field and may hold spaces.
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		p := strings.TrimLeft(fields[5], " ")
		if strings.HasPrefix(p, "/") && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// NamingUnmounter wraps an Unmounter: when a mount is busy, Busy is called
// with the processes that hold it, before the table falls back to
// remounting it read-only.
type NamingUnmounter struct {
	Unmounter
	ProcRoot string // /proc
	Busy     func(target string, holders []Holder, err error)
}

// Unmount implements Unmounter.
func (n NamingUnmounter) Unmount(target string) error {
	err := n.Unmounter.Unmount(target)
	if isBusy(err) && n.Busy != nil {
		h, herr := Holders(n.ProcRoot, target)
		n.Busy(target, h, herr)
	}
	return err
}
