package qemu

import (
	"bytes"
	"sync"
)

// Ending is how the guest's kernel says it stopped, read off the console.
type Ending int

const (
	Running Ending = iota
	PoweredOff
	Halted
	Rebooted
	Panicked
)

func (e Ending) String() string {
	return [...]string{"running", "powered off", "halted", "rebooted", "kernel panic"}[e]
}

// The kernel's own last words (kernel/reboot.c and kernel/panic.c).
var endings = []struct {
	marker []byte
	ending Ending
}{
	{[]byte("reboot: Power down"), PoweredOff},
	{[]byte("reboot: System halted"), Halted},
	{[]byte("reboot: Restarting system"), Rebooted},
	{[]byte("Kernel panic - not syncing"), Panicked},
}

// Watcher is an io.Writer placed on the console stream. It remembers the
// last way the kernel said it ended and tells Done about halts and panics,
// after which QEMU itself would sit there forever.
type Watcher struct {
	mu      sync.Mutex
	line    []byte
	ending  Ending
	failure string // keel's PID 1 said it gave up booting
	// cut: the kernel could not unpack all of the initrd.
	cut bool
	// Stuck receives once when the guest halts or panics.
	Stuck chan Ending
}

// NewWatcher returns a Watcher with a ready Stuck channel.
func NewWatcher() *Watcher { return &Watcher{Stuck: make(chan Ending, 1)} }

func (w *Watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range p {
		if b != '\n' {
			if len(w.line) < 4096 {
				w.line = append(w.line, b)
			}
			continue
		}
		w.scan(w.line)
		w.line = w.line[:0]
	}
	return len(p), nil
}

// bootFailed is how keel's PID 1 says it gave up booting (a partly
// unpacked initrd): the run then fails, however the machine ends.
var bootFailed = []byte("keel: ERROR boot failed: ")

// unpackFailed is how the kernel says the initrd did not all fit in the
// rootfs (init/initramfs.c).
var unpackFailed = []byte("Initramfs unpacking failed")

// cutPanic is Failure's word for a kernel that panicked after it could not
// unpack the initrd: the VM's memory held less than PID 1 itself (/init
// comes first in a keel initrd), so nothing of keel ran to say more.
const cutPanic = "the initrd did not fit in this VM's memory, not even PID 1 (/init): the kernel found no init to run; give the VM more memory (keel run -mem MiB)"

func (w *Watcher) scan(line []byte) {
	if i := bytes.Index(line, bootFailed); i >= 0 && w.failure == "" {
		w.failure = string(bytes.TrimSpace(line[i+len(bootFailed):]))
	}
	if bytes.Contains(line, unpackFailed) {
		w.cut = true
	}
	for _, e := range endings {
		if !bytes.Contains(line, e.marker) {
			continue
		}
		w.ending = e.ending
		if e.ending == Halted || e.ending == Panicked {
			select {
			case w.Stuck <- e.ending:
			default:
			}
		}
	}
}

// Ending is the last ending seen; Running if none.
func (w *Watcher) Ending() Ending {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ending
}

// Failure is what keel's PID 1 said when it gave up booting, or why the
// kernel panicked before PID 1 could run; "" if neither.
func (w *Watcher) Failure() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failure == "" && w.cut && w.ending == Panicked {
		return cutPanic
	}
	return w.failure
}
