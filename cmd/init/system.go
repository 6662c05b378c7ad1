package main

import (
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"

	"github.com/keel-os/keel/pkg/bootlog"
	"github.com/keel-os/keel/pkg/bootreport"
	"github.com/keel-os/keel/pkg/input"
	"github.com/keel-os/keel/pkg/modules"
	"github.com/keel-os/keel/pkg/supervisor"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// initStart returns the monotonic time /init started and sets up the boot
// report with it (written once /run is mounted).
func initStart() time.Duration {
	start := bootlog.Monotonic()
	bootreport.Init(start, bootlog.Monotonic, "")
	return start
}

// alwaysModules are loaded whatever the devices: the ACPI power button and
// the evdev devices it is read through, and overlay. libcontainer protects
// init's binary from the containers it starts (CVE-2019-5736) with a
// read-only overlayfs view of it per container, and without overlay it
// copies the whole binary into a sealed memfd each time; bundles that
// overlay a shared image (runtime.json rootfsLower) need it too.
// keel.modules=a,b on the kernel command line adds more.
var alwaysModules = []string{"button", "evdev", "overlay"}

// setUpSystem does what comes after the mounts and before onboot: kernel
// modules (drivers first: eth0 exists only once virtio_net is loaded),
// hostname, loopback and resource limits. Every failure is logged, none
// stops the boot.
func setUpSystem(log *slog.Logger, args cmdline) {
	if err := bootreport.WriteTo(bootreport.Path); err != nil {
		log.Warn("boot report", "err", err)
	}
	bootreport.Mark("mounts")
	hugePagesOnRequest(log, args, thpEnabled)
	loadModules(log, args)
	bootreport.Mark("modules")
	setHostname(log)
	if err := loopbackUp(); err != nil {
		log.Warn("loopback", "err", err)
	}
	if err := raiseRlimits("/proc/sys/fs/nr_open"); err != nil {
		log.Warn("rlimits", "err", err)
	}
	bootreport.Mark("system")
}

func loadModules(log *slog.Logger, args cmdline) {
	start := time.Now()
	l, source, err := modules.Open("/", log)
	if err != nil {
		log.Warn("modules: none loaded", "err", err)
		return
	}
	log.Debug("modules: read", "index", source, "took", time.Since(start).Round(time.Millisecond))
	r, err := l.Coldplug("/sys")
	if err != nil {
		log.Warn("modules: coldplug", "err", err)
	}
	names := alwaysModules
	if v, _ := args.Value(paramModules); v != "" {
		names = append(names, strings.Split(v, ",")...)
	}
	always := l.Load(names...)
	loaded := append(r.Loaded, always.Loaded...)
	if len(always.Unknown) > 0 {
		log.Warn("modules: not in the image", "modules", strings.Join(always.Unknown, ","))
	}
	log.Info("modules loaded", "count", len(loaded), "failed", len(r.Failed)+len(always.Failed),
		"index", source, "duration", (r.Took + always.Took).Round(time.Millisecond))
	log.Debug("modules", "loaded", strings.Join(loaded, ","))
}

// hostname is the first word of /etc/hostname when it is a valid host
// name, else keel-<MAC without colons>, else keel.
func hostname(etcHostname []byte, mac net.HardwareAddr) string {
	for _, line := range strings.Split(string(etcHostname), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); validHostname(f[0]) {
			return f[0]
		}
		break
	}
	if len(mac) > 0 {
		return "keel-" + hex.EncodeToString(mac)
	}
	return "keel"
}

func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func setHostname(log *slog.Logger) {
	etc, _ := os.ReadFile("/etc/hostname")
	var mac net.HardwareAddr
	if link, err := netlink.LinkByName("eth0"); err == nil {
		mac = link.Attrs().HardwareAddr
	}
	name := hostname(etc, mac)
	if err := unix.Sethostname([]byte(name)); err != nil {
		log.Warn("hostname", "name", name, "err", err)
		return
	}
	log.Info("hostname " + name)
}

// loopbackUp brings lo up; the kernel gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// thpEnabled sets the kernel's transparent huge page mode.
const thpEnabled = "/sys/kernel/mm/transparent_hugepage/enabled"

// hugePagesOnRequest sets transparent huge pages to madvise: only memory a
// program asks for with madvise(MADV_HUGEPAGE) gets 2 MiB pages. Debian's
// kernel defaults to always, and then the Go heaps of PID 1, containerd
// and the shim, and every container's processes, fault in 2 MiB where
// they touch 4 KiB: the bench's work (5 onboot, 3 services) had 30.7 MB
// of its 38.3 MB anonymous memory in huge pages, and 17.7 MB less
// anonymous memory with madvise. A small VM wants the 4 KiB pages; a
// transparent_hugepage= word on the kernel command line is the user's
// choice and is left alone.
func hugePagesOnRequest(log *slog.Logger, args cmdline, path string) {
	if v, ok := args.Value("transparent_hugepage"); ok {
		log.Debug("transparent huge pages as the command line says", "mode", v)
		return
	}
	err := os.WriteFile(path, []byte("madvise"), 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// a kernel without transparent huge pages
	case err != nil:
		log.Warn("transparent huge pages: set madvise", "err", err)
	}
}

// raiseRlimits sets the limits every process inherits from PID 1:
// open files as high as the kernel allows (fs.nr_open; containerd,
// databases and proxies need far more than 1024), and no limit on
// processes or locked memory (eBPF maps, io_uring). syscall.Setrlimit is
// used for files so that Go's exec gives children the new value rather than
// the one at start.
func raiseRlimits(nrOpenPath string) error {
	nofile := uint64(1 << 20)
	if b, err := os.ReadFile(nrOpenPath); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			nofile = n
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		return err
	}
	inf := &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, inf); err != nil {
		return err
	}
	return unix.Setrlimit(unix.RLIMIT_MEMLOCK, inf)
}

// watchPowerButton turns a press of the power key (ACPI button, QMP
// system_powerdown) into a power-off request.
func watchPowerButton(log *slog.Logger, request func(supervisor.Action)) {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		for _, n := range input.Names("/sys/class/input") {
			log.Debug("input device", "device", n)
		}
	}
	p := &input.PowerButton{Dir: "/dev/input", Log: log, Pressed: func(dev string) {
		log.Info("power button pressed", "device", dev)
		request(supervisor.PowerOff)
	}}
	goroutine.Go(log, "power button", true, func() { p.Run(context.Background()) })
}

// consoleShell is the shell PID 1 keeps on the serial console, unless
// the kernel command line says keel.console=off. Start and Stop may be
// called from any goroutine; after Stop, Start does nothing.
type consoleShell struct {
	log    *slog.Logger
	reaper *supervisor.Reaper
	args   cmdline

	mu      sync.Mutex
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newConsole(log *slog.Logger, reaper *supervisor.Reaper, args cmdline) *consoleShell {
	return &consoleShell{log: log, reaper: reaper, args: args}
}

// Start starts the shell (once).
func (c *consoleShell) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.cancel != nil {
		return
	}
	if v, _ := c.args.Value(paramConsole); v == "off" {
		c.log.Info("console shell off (keel.console=off)")
		return
	}
	term := os.Getenv("TERM")
	if term == "" {
		term = "linux"
	}
	shell := &supervisor.ConsoleShell{
		Reaper: c.reaper,
		Shell:  "/bin/sh",
		Env: []string{"PATH=" + defaultPath, "HOME=/root", "TERM=" + term,
			"PS1=\\h:\\w\\$ ", "CONTAINERD_NAMESPACE=services.linuxkit"},
		Log: c.log,
		Started: func(pid int) {
			c.log.Info("console shell started", "pid", pid)
			bootreport.Mark("console")
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	done := c.done
	goroutine.Go(c.log, "console", false, func() {
		defer close(done)
		if err := shell.Run(ctx); err != nil {
			c.log.Warn("no console shell", "err", err)
		}
	})
}

// Stop hangs the shell up and waits (briefly) until it is gone.
func (c *consoleShell) Stop() {
	c.mu.Lock()
	c.stopped = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}
