// Package bundle is the on-disk contract between `keel build` and keel's
// PID 1: where the bundles live inside the image, how they are named, and
// how their config.json and runtime.json are read and written.
//
// It is imported by both sides, so it must stay small and must not pull in
// registry or container-runtime code.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Paths inside the booted image (and inside the initrd, without the leading /).
const (
	Root          = "/containers"
	OnbootDir     = Root + "/onboot"
	OnshutdownDir = Root + "/onshutdown"
	ServicesDir   = Root + "/services"
	// ImagesDir holds, as keel's extension, the images that several
	// writable bundles share: ImagesDir/<digest hex>/ is one image's
	// filesystem, stored once, and each of those bundles' rootfs is an
	// overlay of it (see Runtime.RootfsLower). It is not a Kind: nothing
	// runs from it.
	ImagesDir = Root + "/images"
	// EtcDir holds whatever PID 1 needs to know at boot (module index,
	// boot config).
	EtcDir = "/etc/keel"

	ConfigFile  = "config.json"
	RuntimeFile = "runtime.json"
	RootfsDir   = "rootfs"
)

// Kind says which list of the YAML a bundle came from.
type Kind string

const (
	Onboot     Kind = "onboot"
	Onshutdown Kind = "onshutdown"
	Service    Kind = "services"
)

// Dir is the directory of that kind's bundles, e.g. /containers/onboot.
func (k Kind) Dir() string { return Root + "/" + string(k) }

// validName is what LinuxKit accepts as an image name: it becomes a
// directory name, a container id and a log file name.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidName reports whether name can be used as a bundle name.
func ValidName(name string) bool { return len(name) <= 128 && validName.MatchString(name) }

// DirName is the name of the bundle directory for the image at position
// index (0-based) of a list of the given kind. Onboot and onshutdown bundles
// are prefixed with a zero-padded position so that a sorted listing is the
// YAML order; services are not ordered and keep their plain name.
func DirName(kind Kind, index int, name string) string {
	if kind == Service {
		return name
	}
	return fmt.Sprintf("%03d-%s", index, name)
}

// The initrd's seals. The initrd is several cpio segments; when the guest
// has too little memory the kernel stops unpacking part-way ("Initramfs
// unpacking failed") and boots on with what it has. So the root segment,
// the first, lists every segment in SealsExpected, one a line, and each
// segment ends with an empty file SealsDir/<SealName(segment)>: PID 1
// finds out what is missing before it runs anything. SealsTmpfs, written
// just after it, has a "name bytes" line per segment, bytes being the
// memory the segment's files take once unpacked into the kernel's tmpfs,
// so that PID 1 can say how much memory the image needs. It is a file of
// its own so that a PID 1 older than it reads SealsExpected as before;
// older builds, and outputs that are not unpacked so (tar, squashfs), do
// not write it.
const (
	SealsDir      = EtcDir + "/seals"
	SealsExpected = EtcDir + "/seals.expected"
	SealsTmpfs    = EtcDir + "/seals.tmpfs"
)

// SealName is the file name of a segment's seal: its name ("root",
// "containers/services/web") with slashes made underscores.
func SealName(segment string) string { return strings.ReplaceAll(segment, "/", "_") }

// Seal is one line of SealsExpected.
type Seal struct {
	// Name is the segment's name.
	Name string
	// Bytes is the memory the segment's files take in a tmpfs, -1 when
	// the list does not say.
	Bytes int64
}

// ExpectedSeals reads the expected seals under root (normally "/"), with
// their sizes from SealsTmpfs when it is there and names the segment; an
// initrd built without seals has no SealsExpected: the list is empty then.
func ExpectedSeals(root string) ([]Seal, error) {
	b, err := os.ReadFile(filepath.Join(root, SealsExpected))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the initrd's seal list: %w", err)
	}
	sizes := map[string]int64{}
	if t, err := os.ReadFile(filepath.Join(root, SealsTmpfs)); err == nil {
		for _, line := range strings.Split(string(t), "\n") {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				if n, err := strconv.ParseInt(line[i+1:], 10, 64); err == nil && n >= 0 {
					sizes[line[:i]] = n
				}
			}
		}
	}
	var seals []Seal
	for _, name := range strings.Split(string(b), "\n") {
		if name == "" {
			continue
		}
		s := Seal{Name: name, Bytes: -1}
		if n, ok := sizes[name]; ok {
			s.Bytes = n
		}
		seals = append(seals, s)
	}
	return seals, nil
}

// MissingSeals reads the expected seals under root (normally "/") and
// returns the segments whose seal is not there. An initrd built without
// seals has no SealsExpected: nothing is missing then.
func MissingSeals(root string) (missing []string, total int, err error) {
	seals, err := ExpectedSeals(root)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range seals {
		total++
		if _, err := os.Lstat(filepath.Join(root, SealsDir, SealName(s.Name))); err != nil {
			missing = append(missing, s.Name)
		}
	}
	return missing, total, nil
}

// SealsBytes is the memory all the listed segments take in a tmpfs; ok is
// false when the list does not say for every segment (or is empty).
func SealsBytes(seals []Seal) (total int64, ok bool) {
	for _, s := range seals {
		if s.Bytes < 0 {
			return 0, false
		}
		total += s.Bytes
	}
	return total, len(seals) > 0
}

// Bundle is one bundle directory found in an image.
type Bundle struct {
	Kind Kind
	// Name is the directory name: "000-sysctl" for onboot, "sshd" for a service.
	Name string
	// Path is the absolute path of the bundle directory.
	Path string
}

func (b Bundle) ConfigPath() string  { return filepath.Join(b.Path, ConfigFile) }
func (b Bundle) RuntimePath() string { return filepath.Join(b.Path, RuntimeFile) }

// List returns the bundles of one kind under root (normally "/"), sorted by
// directory name, which for onboot and onshutdown is the YAML order. A
// missing directory is not an error: the image simply has none.
func List(root string, kind Kind) ([]Bundle, error) {
	dir := filepath.Join(root, kind.Dir())
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s bundles: %w", kind, err)
	}
	var out []Bundle
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		out = append(out, Bundle{Kind: kind, Name: e.Name(), Path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ReadConfig reads a bundle's OCI runtime spec.
func ReadConfig(path string) (*specs.Spec, error) {
	var s specs.Spec
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// MarshalConfig encodes a runtime spec the way it is stored in a bundle.
func MarshalConfig(s *specs.Spec) ([]byte, error) { return marshal(s) }

// Runtime is runtime.json: what LinuxKit's runtime config holds, i.e. the
// host-side preparation done before the container is created.
type Runtime struct {
	Cgroups    []string      `json:"cgroups,omitempty"`
	Mounts     []specs.Mount `json:"mounts,omitempty"`
	Mkdir      []string      `json:"mkdir,omitempty"`
	Interfaces []Interface   `json:"interfaces,omitempty"`
	BindNS     Namespaces    `json:"bindNS,omitempty"`
	// Namespace is the containerd namespace of a service.
	Namespace string `json:"namespace,omitempty"`

	// keel's extensions, from the image's YAML (absent from LinuxKit's).

	// Restart is a service's restart policy: RestartAlways,
	// RestartOnFailure (the default for services) or RestartNever.
	Restart string `json:"restart,omitempty"`
	// StopGracePeriod is how long a service has between SIGTERM and
	// SIGKILL at shutdown, as a Go duration ("10s"); empty is the default.
	StopGracePeriod string `json:"stopGracePeriod,omitempty"`
	// OnFailure says what a failing onboot or onshutdown does:
	// OnFailureContinue (the default) or OnFailureHalt.
	OnFailure string `json:"onFailure,omitempty"`
	// Timeout bounds an onboot or onshutdown container's run, as a Go
	// duration ("30s"): past it the container is killed and counts as
	// failed (its OnFailure applies). Empty means no limit for onboot and
	// the default for onshutdown.
	Timeout string `json:"timeout,omitempty"`
	// Healthcheck is a service's health check, as Docker Compose's, with
	// every default filled in by keel build; nil is none.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	// DependsOn lists the services a service waits for before its first
	// start, each with the condition it waits for.
	DependsOn []Dependency `json:"dependsOn,omitempty"`
	// RootfsLower, when set, is the absolute path (in the booted system)
	// of an image's filesystem shared with other bundles, normally under
	// ImagesDir. The bundle's rootfs is then an empty directory, the mount
	// point of an overlay that PID 1 makes before the container is
	// created: RootfsLower below, a writable layer of the bundle's own on
	// top, so the bundle's writes reach neither the shared files nor the
	// other bundles. An image used by several writable bundles is so
	// stored once. Without it (and in every LinuxKit bundle) rootfs holds
	// the image itself.
	RootfsLower string `json:"rootfsLower,omitempty"`
}

// ImagePath is where `keel build` puts the shared filesystem of the image
// whose manifest digest has hex part hex.
func ImagePath(hex string) string { return ImagesDir + "/" + hex }

// InitFeaturesLabel is the image label by which an init image says what
// its PID 1 can do with a bundle beyond LinuxKit's layout: a
// comma-separated list of features. keel build uses a feature only when
// one of the init images declares it, so that a YAML with another init
// (LinuxKit's, or an older keel's) still gets bundles that init can run.
const InitFeaturesLabel = "org.keel.init.features"

// FeatureRootfsLower is the feature of a PID 1 that mounts a writable
// bundle's rootfs as an overlay of Runtime.RootfsLower.
const FeatureRootfsLower = "rootfs-lower"

// HasFeature reports whether the InitFeaturesLabel value labels lists
// feature.
func HasFeature(labels map[string]string, feature string) bool {
	for _, f := range strings.Split(labels[InitFeaturesLabel], ",") {
		if strings.TrimSpace(f) == feature {
			return true
		}
	}
	return false
}

// Values of Runtime.Restart and Runtime.OnFailure.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"

	OnFailureContinue = "continue"
	OnFailureHalt     = "halt"
)

// Healthcheck is runtime.json's health check of a service. keel build
// writes every field, defaults included.
type Healthcheck struct {
	// Test is ["CMD", prog, args...] or ["CMD-SHELL", "shell command"]
	// (run inside the service's container), or ["TCP", "host:port"] (a
	// connection from the service's network namespace, a keel extension).
	Test []string `json:"test"`
	// Interval, Timeout and StartPeriod are Go durations ("30s").
	Interval    string `json:"interval"`
	Timeout     string `json:"timeout"`
	StartPeriod string `json:"startPeriod"`
	// Retries is how many failures in a row make the service unhealthy.
	Retries int `json:"retries"`
}

// The first word of Healthcheck.Test.
const (
	HealthCmd      = "CMD"
	HealthCmdShell = "CMD-SHELL"
	HealthTCP      = "TCP"
)

// Dependency is one entry of a service's runtime.json dependsOn.
type Dependency struct {
	Service   string `json:"service"`
	Condition string `json:"condition"` // ConditionStarted or ConditionHealthy
}

// Values of Dependency.Condition, as in Docker Compose.
const (
	ConditionStarted = "service_started"
	ConditionHealthy = "service_healthy"
)

// Interface is a network interface to create or move into the container.
type Interface struct {
	Name         string `json:"name,omitempty"`
	Add          string `json:"add,omitempty"`
	Peer         string `json:"peer,omitempty"`
	CreateInRoot bool   `json:"createInRoot"`
}

// Namespaces lists paths where a container's namespaces are bind-mounted.
type Namespaces struct {
	Cgroup string `json:"cgroup,omitempty"`
	Ipc    string `json:"ipc,omitempty"`
	Mnt    string `json:"mnt,omitempty"`
	Net    string `json:"net,omitempty"`
	Pid    string `json:"pid,omitempty"`
	User   string `json:"user,omitempty"`
	Uts    string `json:"uts,omitempty"`
}

// ReadRuntime reads runtime.json; a missing file is an empty Runtime.
func ReadRuntime(path string) (*Runtime, error) {
	var r Runtime
	err := readJSON(path, &r)
	if errors.Is(err, fs.ErrNotExist) {
		return &r, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// MarshalRuntime encodes runtime.json.
func MarshalRuntime(r *Runtime) ([]byte, error) { return marshal(r) }

func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read bundle file: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
