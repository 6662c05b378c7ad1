package input

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, EventSize)
	binary.LittleEndian.PutUint64(b[0:], 1700000000)
	binary.LittleEndian.PutUint64(b[8:], 123456)
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent(event(EvKey, KeyPower, 1))
	if err != nil {
		t.Fatal(err)
	}
	if e != (Event{Sec: 1700000000, Usec: 123456, Type: EvKey, Code: KeyPower, Value: 1}) || !e.IsPowerPress() {
		t.Errorf("got %+v", e)
	}
	if e, _ := ParseEvent(event(EvKey, KeyPower, 0)); e.IsPowerPress() {
		t.Error("a release counts as a press")
	}
	if e, _ := ParseEvent(event(0, 0, 0)); e.IsPowerPress() {
		t.Error("EV_SYN counts as a press")
	}
	if _, err := ParseEvent(make([]byte, 10)); err == nil {
		t.Error("short event accepted")
	}
}

func TestReadPower(t *testing.T) {
	// What the ACPI button sends: press, SYN, release, SYN; other keys
	// before it do nothing.
	var in bytes.Buffer
	in.Write(event(EvKey, 30, 1))
	in.Write(event(0, 0, 0))
	if err := ReadPower(bytes.NewReader(in.Bytes())); err != io.EOF {
		t.Errorf("no power key: err = %v, want EOF", err)
	}
	in.Write(event(EvKey, KeyPower, 1))
	in.Write(event(0, 0, 0))
	in.Write(event(EvKey, KeyPower, 0))
	if err := ReadPower(bytes.NewReader(in.Bytes())); err != nil {
		t.Errorf("power key: err = %v", err)
	}
}

// A device that appears after the watcher started is picked up; a FIFO
// stands in for the character device.
func TestPowerButtonNewDevice(t *testing.T) {
	dir := t.TempDir()
	pressed := make(chan string, 1)
	p := &PowerButton{Dir: dir, Rescan: 10 * time.Millisecond, Pressed: func(d string) { pressed <- d }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	time.Sleep(30 * time.Millisecond)

	dev := filepath.Join(dir, "event3")
	if err := syscall.Mkfifo(dev, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(dev, os.O_WRONLY, 0) // blocks until the watcher opens it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(append(event(EvKey, KeyPower, 1), event(0, 0, 0)...))
	select {
	case d := <-pressed:
		if d != dev {
			t.Errorf("pressed on %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("power key not seen")
	}
}

// A panic while handling a press (in Pressed, say) must not end the
// process, and the device must be watched again afterwards. With a bare go
// statement the panic kills the test binary; without the deferred cleanup
// the device is never opened again and no second press is seen.
func TestPowerButtonSurvivesPanic(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "event0")
	if err := syscall.Mkfifo(dev, 0o600); err != nil {
		t.Fatal(err)
	}
	pressed := make(chan string, 1)
	var panicked atomic.Bool
	p := &PowerButton{Dir: dir, Rescan: 10 * time.Millisecond, Pressed: func(d string) {
		if !panicked.Swap(true) {
			panic("planted panic in Pressed")
		}
		pressed <- d
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	// Press the key until a press gets through. After the panic the
	// watcher closes the FIFO, and a rescan may open it again while this
	// end is still open, so neither "the write fails" nor "it does not"
	// can be waited for; a press is simply sent again. The writes do not
	// block: a FIFO without a reader refuses the open (ENXIO) or the write
	// (EPIPE), and one nobody reads fills up (EAGAIN).
	fd := -1
	defer func() {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if fd < 0 {
			var err error
			fd, err = syscall.Open(dev, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			if err != nil && err != syscall.ENXIO {
				t.Fatal(err)
			}
		}
		if fd >= 0 {
			_, err := syscall.Write(fd, append(event(EvKey, KeyPower, 1), event(0, 0, 0)...))
			switch err {
			case nil, syscall.EAGAIN:
			case syscall.EPIPE:
				syscall.Close(fd)
				fd = -1
			default:
				t.Fatal(err)
			}
		}
		select {
		case d := <-pressed:
			if d != dev {
				t.Errorf("pressed on %s", d)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !panicked.Load() {
		t.Fatal("power key not seen at all")
	}
	t.Fatal("power key not seen after a panic in the watcher")
}
