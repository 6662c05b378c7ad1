package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Options is a list of fstab-style mount options split into what mount(2)
// takes: flags, propagation changes (applied by separate calls) and the
// filesystem-specific data string.
type Options struct {
	Flags       uintptr
	Propagation []uintptr
	Data        string
}

// Bind reports whether the options ask for a bind mount.
func (o Options) Bind() bool { return o.Flags&unix.MS_BIND != 0 }

// IsBind reports whether m is a bind mount, by its type or its options.
func IsBind(m specs.Mount) bool { return m.Type == "bind" || ParseOptions(m.Options).Bind() }

var optionFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"async":       {true, unix.MS_SYNCHRONOUS},
	"dirsync":     {false, unix.MS_DIRSYNC},
	"remount":     {false, unix.MS_REMOUNT},
	"mand":        {false, unix.MS_MANDLOCK},
	"nomand":      {true, unix.MS_MANDLOCK},
	"atime":       {true, unix.MS_NOATIME},
	"noatime":     {false, unix.MS_NOATIME},
	"diratime":    {true, unix.MS_NODIRATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"norelatime":  {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"defaults":    {false, 0},
}

var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// ParseOptions splits mount options as written in an OCI spec or
// runtime.json. Options it does not know go to the data string.
func ParseOptions(opts []string) Options {
	var o Options
	var data []string
	for _, opt := range opts {
		if f, ok := optionFlags[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
			} else {
				o.Flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[opt]; ok {
			o.Propagation = append(o.Propagation, p)
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o
}

// MountSpec makes a mount described the OCI way (as in runtime.json)
// on the host, creating its mount point, and records it. A bind mount is
// remounted afterwards when it asks for flags such as ro, which the kernel
// ignores on the first call.
func (t *Table) MountSpec(m specs.Mount) error {
	o := ParseOptions(m.Options)
	if m.Type == "bind" {
		o.Flags |= unix.MS_BIND
	}
	if err := mountPoint(m.Source, m.Destination, o.Bind()); err != nil {
		return err
	}
	fstype, flags := m.Type, o.Flags
	if o.Bind() {
		// The kernel ignores every flag but MS_REC on a new bind mount;
		// the others take a remount.
		fstype, flags = "", o.Flags&(unix.MS_BIND|unix.MS_REC)
	}
	if err := t.Mount(m.Source, m.Destination, fstype, flags, o.Data); err != nil {
		return err
	}
	if rest := o.Flags &^ (unix.MS_BIND | unix.MS_REC); o.Bind() && rest != 0 {
		if err := unix.Mount("", m.Destination, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
			return fmt.Errorf("remount %s with %v: %w", m.Destination, m.Options, err)
		}
	}
	for _, p := range o.Propagation {
		if err := unix.Mount("", m.Destination, "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// mountPoint creates the destination of a mount: a directory, or for a
// bind mount of a file, an empty file.
func mountPoint(source, target string, bind bool) error {
	if bind {
		st, err := os.Stat(source)
		if err != nil {
			return fmt.Errorf("bind mount %s: %w", source, err)
		}
		if !st.IsDir() {
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("create mount point %s: %w", target, err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("create mount point %s: %w", target, err)
			}
			return f.Close()
		}
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	return nil
}
