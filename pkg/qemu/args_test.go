package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/testenv"
)

func TestParseDisk(t *testing.T) {
	for in, want := range map[string]Disk{
		"d.img":                  {Path: "d.img"},
		"file=d.qcow2,size=1G":   {Path: "d.qcow2", Size: 1 << 30},
		"size=512M,format=qcow2": {Size: 512 << 20, Format: QCOW2},
	} {
		got, err := ParseDisk(in)
		if err != nil || got != want {
			t.Errorf("ParseDisk(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "file=", "size=lots", "size=0", "format=vmdk", "colour=red", "file=x,size"} {
		if d, err := ParseDisk(bad); err == nil {
			t.Errorf("ParseDisk(%q) = %+v, want an error", bad, d)
		}
	}
	for d, want := range map[Disk]string{
		{Path: "a.img"}:                  "file=a.img,if=virtio,format=raw,cache=writeback",
		{Path: "a.qcow2"}:                "file=a.qcow2,if=virtio,format=qcow2,cache=writeback",
		{Path: "a,b.img", Format: "raw"}: "file=a,,b.img,if=virtio,format=raw,cache=writeback",
	} {
		if got := d.drive(); got != want {
			t.Errorf("%+v: drive %q, want %q", d, got, want)
		}
	}
}

func TestDiskCreate(t *testing.T) {
	dir := t.TempDir()
	raw := Disk{Path: filepath.Join(dir, "sub", "d.img"), Size: 64 << 20}
	if err := raw.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(raw.Path); err != nil || st.Size() != 64<<20 || st.Mode().Perm() != 0o644 {
		t.Fatalf("raw disk: %v %v", st, err)
	}
	// An existing disk is kept, whatever the size asked.
	os.WriteFile(raw.Path, []byte("data"), 0o644)
	if err := raw.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(raw.Path); string(b) != "data" {
		t.Errorf("existing disk changed: %q", b)
	}
	if err := (Disk{Path: filepath.Join(dir, "none.img")}).Create(context.Background()); err == nil || !strings.Contains(err.Error(), "give its size") {
		t.Errorf("absent disk with no size: %v", err)
	}
	testenv.Tool(t, "qemu-img", "qemu-utils")
	q := Disk{Path: filepath.Join(dir, "d.qcow2"), Size: 1 << 30}
	if err := q.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(q.Path)
	if err != nil || len(b) < 4 || string(b[:4]) != "QFI\xfb" {
		t.Errorf("qcow2 disk: %v, header %q", err, b[:min(4, len(b))])
	}
}

func TestParsePublish(t *testing.T) {
	for in, want := range map[string]string{
		"8080:80":             "hostfwd=tcp::8080-:80",
		"8080:80/tcp":         "hostfwd=tcp::8080-:80",
		"5353:53/udp":         "hostfwd=udp::5353-:53",
		"127.0.0.1:8080:80":   "hostfwd=tcp:127.0.0.1:8080-:80",
		"[::1]:8053:53/udp":   "hostfwd=udp:[::1]:8053-:53",
		"0.0.0.0:2222:22/tcp": "hostfwd=tcp:0.0.0.0:2222-:22",
	} {
		f, err := ParsePublish(in)
		if err != nil || f.hostfwd() != want {
			t.Errorf("ParsePublish(%q) = %q, %v; want %q", in, f.hostfwd(), err, want)
		}
	}
	for _, bad := range []string{"80", "x:80", "8080:99999", "8080:80/sctp", "host:8080:80", "8080:0", ":80", "1.2.3.4:80"} {
		if f, err := ParsePublish(bad); err == nil {
			t.Errorf("ParsePublish(%q) = %+v, want an error", bad, f)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int{"1024": 1024, "2G": 2048, "2g": 2048, "512M": 512, "1.5G": 1536, "2GiB": 2048} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "lots", "1000k", "2X"} {
		if got, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", bad, got)
		}
	}
}

func TestArgsDetached(t *testing.T) {
	m := &Machine{Kernel: "k", Initrd: "i", Accel: TCG, Detached: true, ConsoleFile: "/s/console.log", PIDFile: "/s/qemu.pid",
		Disks: []Disk{{Path: "/s/d.qcow2"}}}
	a, err := m.Args()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a, " ")
	for _, want := range []string{"-serial file:/s/console.log", "-daemonize -pidfile /s/qemu.pid", "-drive file=/s/d.qcow2,if=virtio,format=qcow2,cache=writeback"} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "stdio") {
		t.Errorf("a detached VM's console on stdio:\n%s", got)
	}
}

// Command checks that the files it is given exist before it runs anything.
func TestCommandChecksFiles(t *testing.T) {
	dir := t.TempDir()
	k, i := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(k, nil, 0o644)
	os.WriteFile(i, nil, 0o644)
	m := &Machine{Kernel: k, Initrd: i, Accel: TCG, Disks: []Disk{{Path: filepath.Join(dir, "missing.img")}}}
	if _, err := m.Command(context.Background()); err == nil || !strings.Contains(err.Error(), "missing.img") {
		t.Errorf("missing disk: %v", err)
	}
	m = &Machine{Kernel: filepath.Join(dir, "nokernel"), Initrd: i, Accel: TCG}
	if _, err := m.Command(context.Background()); err == nil || !strings.Contains(err.Error(), "nokernel") {
		t.Errorf("missing kernel: %v", err)
	}
}
