package main

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostname(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:5A")
	for _, tc := range []struct {
		etc  string
		mac  net.HardwareAddr
		want string
	}{
		{"", mac, "keel-52540012345a"},
		{"web-1\n", mac, "web-1"},
		{"# comment\n\n  db.example  \n", mac, "db.example"},
		{"bad_name!\n", mac, "keel-52540012345a"},
		{"-leadingdash", nil, "keel"},
		{"", nil, "keel"},
	} {
		if got := hostname([]byte(tc.etc), tc.mac); got != tc.want {
			t.Errorf("hostname(%q, %v) = %q, want %q", tc.etc, tc.mac, got, tc.want)
		}
	}
}

func TestParamValue(t *testing.T) {
	c := cmdline(strings.Fields("console=ttyS0 quiet keel.console=off keel.oneshot keel.x=1 keel.y=2 init=/init\n"))
	if v, ok := c.Value("keel.console"); !ok || v != "off" {
		t.Errorf("keel.console = %q %v", v, ok)
	}
	if v, ok := c.Value("keel.oneshot"); !ok || v != "" {
		t.Errorf("keel.oneshot = %q %v", v, ok)
	}
	if _, ok := c.Value("keel"); ok {
		t.Error("keel found")
	}
	if !c.Flag("keel.oneshot") || !c.Flag("keel.x") || c.Flag("keel.y") || c.Flag("keel.console") || c.Flag("quiet=1") {
		t.Error("Flag: a bare word or =1 is set, anything else is not")
	}
	// The last word wins, as for the kernel.
	if v, _ := (cmdline{"keel.console=off", "keel.console=on"}).Value("keel.console"); v != "on" {
		t.Errorf("last word: %q", v)
	}
}

// Transparent huge pages become madvise, unless the kernel command line
// names a mode, and a kernel without them is no error.
func TestHugePagesOnRequest(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	enabled := filepath.Join(dir, "enabled")
	for _, c := range []struct {
		args cmdline
		want string
	}{
		{cmdline{"console=ttyS0"}, "madvise"},
		{cmdline{"console=ttyS0", "transparent_hugepage=always"}, "always [madvise] never"},
		{cmdline{"transparent_hugepage=never", "quiet"}, "always [madvise] never"},
	} {
		if err := os.WriteFile(enabled, []byte("always [madvise] never"), 0o644); err != nil {
			t.Fatal(err)
		}
		hugePagesOnRequest(log, c.args, enabled)
		if b, _ := os.ReadFile(enabled); string(b) != c.want {
			t.Errorf("%v: enabled holds %q, want %q", c.args, b, c.want)
		}
	}
	logs.Reset()
	hugePagesOnRequest(log, nil, filepath.Join(dir, "none", "enabled"))
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("a kernel without transparent huge pages warns:\n%s", logs.String())
	}
}
