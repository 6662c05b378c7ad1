// Package input watches the kernel's evdev devices (/dev/input/event*)
// for the power key. The ACPI power button (QEMU's system_powerdown) is an
// input device made by the button driver: the kernel sends PID 1 no signal
// for it, it reports KEY_POWER to whoever reads the device.
package input

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keel-os/keel/pkg/goroutine"
)

// Event types and codes from linux/input-event-codes.h.
const (
	EvKey    = 0x01
	KeyPower = 116
)

// EventSize is sizeof(struct input_event) on 64-bit Linux: a struct
// timeval (two longs), then type, code (u16) and value (s32).
const EventSize = 24

// Event is one struct input_event.
type Event struct {
	Sec, Usec int64
	Type      uint16
	Code      uint16
	Value     int32
}

// ParseEvent decodes one struct input_event (native little-endian on the
// architectures keel runs on).
func ParseEvent(b []byte) (Event, error) {
	if len(b) < EventSize {
		return Event{}, fmt.Errorf("input event: %d bytes, want %d", len(b), EventSize)
	}
	le := binary.LittleEndian
	return Event{
		Sec:   int64(le.Uint64(b[0:])),
		Usec:  int64(le.Uint64(b[8:])),
		Type:  le.Uint16(b[16:]),
		Code:  le.Uint16(b[18:]),
		Value: int32(le.Uint32(b[20:])),
	}, nil
}

// IsPowerPress reports whether e is the power key going down (value 1;
// 0 is release, 2 autorepeat).
func (e Event) IsPowerPress() bool { return e.Type == EvKey && e.Code == KeyPower && e.Value == 1 }

// ReadPower reads events from r until the power key is pressed (nil) or r
// fails.
func ReadPower(r io.Reader) error {
	// The kernel hands out whole events, several per read when queued.
	buf := make([]byte, EventSize*16)
	for {
		n, err := r.Read(buf)
		for off := 0; off+EventSize <= n; off += EventSize {
			e, _ := ParseEvent(buf[off : off+EventSize])
			if e.IsPowerPress() {
				return nil
			}
		}
		if err != nil {
			return err
		}
	}
}

// PowerButton watches every /dev/input/event* device, including ones that
// appear later, and calls Pressed each time the power key goes down.
type PowerButton struct {
	Dir     string        // /dev/input
	Rescan  time.Duration // how often to look for new devices
	Pressed func(device string)
	Log     *slog.Logger
}

// Run watches until ctx is done.
func (p *PowerButton) Run(ctx context.Context) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		mu       sync.Mutex
		watching = map[string]*os.File{}
	)
	defer func() {
		mu.Lock()
		for _, f := range watching {
			f.Close()
		}
		mu.Unlock()
	}()
	scan := func() {
		names, _ := filepath.Glob(filepath.Join(p.Dir, "event*"))
		for _, name := range names {
			mu.Lock()
			_, ok := watching[name]
			mu.Unlock()
			if ok {
				continue
			}
			f, err := os.Open(name)
			if err != nil {
				log.Debug("input: open", "device", name, "err", err)
				continue
			}
			mu.Lock()
			watching[name] = f
			mu.Unlock()
			log.Debug("input: watching", "device", name)
			// Recovering: a panic here (in Pressed, say) would end PID 1.
			// The deferred cleanup runs on a panic too, so the device is
			// forgotten and the next rescan watches it again.
			goroutine.Go(log, "input "+name, false, func() {
				defer func() {
					// Gone (unplugged), closed or panicked: forget it, a
					// rescan picks it up again if it is still there.
					mu.Lock()
					if watching[name] == f {
						delete(watching, name)
					}
					mu.Unlock()
					f.Close()
				}()
				for {
					err := ReadPower(f)
					if err == nil {
						if p.Pressed != nil {
							p.Pressed(name)
						}
						continue
					}
					if !errors.Is(err, os.ErrClosed) {
						log.Debug("input: read", "device", name, "err", err)
					}
					return
				}
			})
		}
	}
	rescan := p.Rescan
	if rescan <= 0 {
		rescan = 2 * time.Second
	}
	t := time.NewTicker(rescan)
	defer t.Stop()
	for {
		scan()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Names returns the device names of the event devices under sysClass
// (/sys/class/input), e.g. "event0: Power Button", for the log.
func Names(sysClass string) []string {
	ents, _ := filepath.Glob(filepath.Join(sysClass, "event*"))
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(e, "device", "name"))
		if err != nil {
			continue
		}
		out = append(out, filepath.Base(e)+": "+strings.TrimSpace(string(b)))
	}
	return out
}
