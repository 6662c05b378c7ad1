package input

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
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
// statement the panic kills the test binary.
func TestPowerButtonSurvivesPanic(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "event0")
	if err := syscall.Mkfifo(dev, 0o600); err != nil {
		t.Fatal(err)
	}
	pressed := make(chan string, 1)
	first := true
	p := &PowerButton{Dir: dir, Rescan: 10 * time.Millisecond, Pressed: func(d string) {
		if first {
			first = false
			panic("planted panic in Pressed")
		}
		pressed <- d
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	for i := 0; i < 2; i++ {
		// Opening the FIFO blocks until the watcher opens it, after the
		// panic only once it has forgotten the device and rescanned.
		w, err := os.OpenFile(dev, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(event(EvKey, KeyPower, 1))
		if i == 0 {
			// Wait for the watcher to let go of the FIFO before the next
			// open: a write then fails with EPIPE once it has closed it.
			deadline := time.Now().Add(time.Minute)
			for {
				if _, err := w.Write(event(0, 0, 0)); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("watcher still holds the device a minute after the panic")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		w.Close()
	}
	select {
	case d := <-pressed:
		if d != dev {
			t.Errorf("pressed on %s", d)
		}
	case <-time.After(time.Minute):
		t.Fatal("power key not seen after a panic in the watcher")
	}
}
