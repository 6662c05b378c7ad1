package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestArgsTCG(t *testing.T) {
	m := &Machine{Kernel: "k", Initrd: "i", Cmdline: "console=ttyS0", Accel: TCG,
		Publish: []string{"8080:80"}, QMP: "/tmp/q.sock", NoReboot: true}
	a, err := m.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a, " ")
	for _, want := range []string{
		"-nodefaults", "-M q35", "-m 1024", "-smp 2", "-accel tcg,thread=multi",
		"-kernel k", "-initrd i", "-append console=ttyS0", "-serial mon:stdio",
		"hostfwd=tcp::8080-:80", "-qmp unix:/tmp/q.sock,server=on,wait=off", "-no-reboot",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if slices.Contains(a, "microvm") || strings.Contains(got, "-cpu host") {
		t.Errorf("TCG args must not use microvm or -cpu host: %s", got)
	}
}

func TestArgsErrors(t *testing.T) {
	for _, m := range []Machine{
		{Accel: "hvf"},
		{Accel: TCG, Publish: []string{"80"}},
		{Accel: TCG, Publish: []string{"x:80"}},
		{Accel: TCG, Publish: []string{"8080:99999"}},
		{Accel: TCG, Publish: []string{"8080:80"}, NoNetwork: true},
		{Accel: TCG, Disks: []Disk{{Size: 1 << 30}}},
		{Accel: TCG, Detached: true, ConsoleFile: "c.log"},
	} {
		if _, err := m.Args(); err == nil {
			t.Errorf("%+v: want an error", m)
		}
	}
}

func TestArgsDisk(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d.img")
	os.WriteFile(d, nil, 0o644)
	m := &Machine{Accel: KVM, Disks: []Disk{{Path: d}}}
	a, err := m.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a, " ")
	if !strings.Contains(got, "file="+d+",if=virtio,format=raw") || !strings.Contains(got, "-accel kvm -cpu host") {
		t.Errorf("unexpected args: %s", got)
	}
}

func TestHasVirtFlag(t *testing.T) {
	if hasVirtFlag([]byte("processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n")) {
		t.Error("no vmx/svm: want false")
	}
	if !hasVirtFlag([]byte("flags\t\t: fpu vmx sse2\n")) || !hasVirtFlag([]byte("flags\t: svm\n")) {
		t.Error("vmx/svm present: want true")
	}
	if hasVirtFlag([]byte("vmx flags\t: fpu\nmodel name: vmxsvm\n")) {
		t.Error("vmx outside a flags field must not count")
	}
}

func TestWatcher(t *testing.T) {
	w := NewWatcher()
	w.Write([]byte("[    1.0] keel: init started\r\n[    2.0] reboot: Power "))
	if w.Ending() != Running {
		t.Fatalf("half a line must not count: %v", w.Ending())
	}
	w.Write([]byte("down\r\n"))
	if w.Ending() != PoweredOff {
		t.Fatalf("want powered off, got %v", w.Ending())
	}
	select {
	case e := <-w.Stuck:
		t.Fatalf("power-off is not stuck, got %v", e)
	default:
	}
	w.Write([]byte("[ 3.0] Kernel panic - not syncing: Attempted to kill init!\n"))
	if e := <-w.Stuck; e != Panicked {
		t.Fatalf("want panic, got %v", e)
	}
}

func TestWatcherBootFailed(t *testing.T) {
	w := NewWatcher()
	w.Write([]byte("[  1.0] keel: ERROR initrd incomplete: the kernel did not unpack all of it missing=2\n"))
	if w.Failure() != "" {
		t.Fatalf("an error line that is not the boot failure: %q", w.Failure())
	}
	w.Write([]byte("[  1.1] keel: ERROR boot failed: the initrd did not fit in this VM's memory; nothing is run mem=240MB\r\n"))
	w.Write([]byte("[  1.2] keel: ERROR boot failed: a second one\n"))
	if got, want := w.Failure(), "the initrd did not fit in this VM's memory; nothing is run mem=240MB"; got != want {
		t.Fatalf("Failure() = %q, want %q", got, want)
	}
}

// A VM too small for /init itself: the kernel cuts the initrd short, finds
// no init and panics. The run fails saying why, not just "panicked".
func TestWatcherInitrdCutBeforeInit(t *testing.T) {
	w := NewWatcher()
	w.Write([]byte("[    1.47] Initramfs unpacking failed: write error\n"))
	if w.Failure() != "" {
		t.Fatalf("a failure before the kernel gave up: %q", w.Failure())
	}
	w.Write([]byte("[    2.04] Failed to execute /init (error -26)\n"))
	w.Write([]byte("[    2.05] Kernel panic - not syncing: No working init found.\n"))
	if e := <-w.Stuck; e != Panicked {
		t.Fatalf("want panic, got %v", e)
	}
	if got := w.Failure(); !strings.Contains(got, "did not fit in this VM's memory, not even PID 1") {
		t.Fatalf("Failure() = %q", got)
	}

	// A panic with the initrd whole is a plain panic.
	w = NewWatcher()
	w.Write([]byte("[ 3.0] Kernel panic - not syncing: Attempted to kill init!\n"))
	if got := w.Failure(); got != "" {
		t.Fatalf("Failure() = %q for a panic with the initrd whole", got)
	}
}
