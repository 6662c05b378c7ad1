package bootreport

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReportOrderAndFile(t *testing.T) {
	now := 2 * time.Second
	path := filepath.Join(t.TempDir(), "run/keel/boot.json")
	r := New(2*time.Second, func() time.Duration { return now }, "")
	now += 3 * time.Millisecond
	if at := r.Mark("init"); at != 0 {
		t.Errorf("init at %v, want 0", at)
	}
	if err := r.SetPath(path); err != nil {
		t.Fatal(err)
	}
	now += 9 * time.Millisecond
	r.Mark("mounts")
	now += 300*time.Millisecond + 700*time.Microsecond
	r.Mark("onboot 000-a b")
	now += time.Second
	if at := r.Mark("mounts"); at != 12*time.Millisecond {
		t.Errorf("second mark moved the phase to %v", at)
	}
	want := "{\n  \"init\": 0,\n  \"mounts\": 12,\n  \"onboot 000-a b\": 312\n}\n"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("file %q, want %q", b, want)
	}
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil || m["onboot 000-a b"] != 312 {
		t.Errorf("not valid JSON: %v %v", m, err)
	}
}

func TestMarkBeforeInit(t *testing.T) {
	Mark("nothing") // must not panic
	r := Init(0, func() time.Duration { return time.Second }, "")
	Mark("x")
	if p := r.Phases(); len(p) != 2 || p[0] != (Phase{"init", 0}) || p[1].Name != "x" || p[1].At != time.Second {
		t.Errorf("phases %v", p)
	}
}
