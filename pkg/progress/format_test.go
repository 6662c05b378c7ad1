package progress

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_500_000: "1.5 MB", 12_345_678_901: "12.3 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDurationAndRate(t *testing.T) {
	if got := Duration(1234 * time.Millisecond); got != "1.2s" {
		t.Errorf("Duration = %q", got)
	}
	if got := Duration(125 * time.Second); got != "2m05s" {
		t.Errorf("Duration = %q", got)
	}
	if got := Rate(3_000_000, 2*time.Second); got != "1.5 MB/s" {
		t.Errorf("Rate = %q", got)
	}
	if got := Rate(3_000_000, 0); got != "" {
		t.Errorf("Rate over no time = %q, want nothing", got)
	}
}

func TestParseMode(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s, want := range map[string]Mode{"auto": Plain, "plain": Plain, "tty": TTY, "none": None} {
		got, err := ParseMode(s, f)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) on a file = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseMode("fancy", f); err == nil {
		t.Error("ParseMode accepted \"fancy\"")
	}
}
