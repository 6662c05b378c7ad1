package supervisor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotateLogBoundsAndKeepsOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.log")
	// The writer keeps its file open in append mode, as the shim does.
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const limit = 1000
	if rotated, err := RotateLog(path, limit); err != nil || rotated {
		t.Fatalf("empty log: rotated=%v err=%v", rotated, err)
	}
	if rotated, err := RotateLog(filepath.Join(t.TempDir(), "missing.log"), limit); err != nil || rotated {
		t.Fatalf("missing log: rotated=%v err=%v", rotated, err)
	}
	for round := range 5 {
		line := strings.Repeat(string(rune('a'+round)), 99) + "\n"
		for range 30 { // 3000 bytes, three times the bound
			if _, err := w.WriteString(line); err != nil {
				t.Fatal(err)
			}
		}
		rotated, err := RotateLog(path, limit)
		if err != nil || !rotated {
			t.Fatalf("round %d: rotated=%v err=%v", round, rotated, err)
		}
		cur, _ := os.Stat(path)
		old, _ := os.Stat(path + ".1")
		if cur.Size() != 0 || old.Size() != limit {
			t.Fatalf("round %d: log %d bytes, .1 %d bytes; want 0 and %d", round, cur.Size(), old.Size(), limit)
		}
		// The newest lines are the ones kept.
		b, _ := os.ReadFile(path + ".1")
		if !bytes.HasSuffix(b, []byte(line)) {
			t.Fatalf("round %d: .1 does not end with the newest line", round)
		}
	}
	// Appends after a rotation land at the start of the emptied file.
	if _, err := w.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Fatalf("after rotation the log holds %q", b)
	}
	matches, _ := filepath.Glob(path + "*")
	if len(matches) != 2 {
		t.Errorf("files %v, want the log and one rotated file", matches)
	}
}

func TestTailLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "svc.log")
	os.WriteFile(path+".1", []byte("o1\no2\no3"), 0o644) // no final newline
	os.WriteFile(path, []byte("c1\nc2\n"), 0o644)
	for _, tc := range []struct {
		n    int
		want string
	}{
		{1, "c2\n"},
		{2, "c1\nc2\n"},
		{3, "o3\nc1\nc2\n"},
		{0, "o1\no2\no3\nc1\nc2\n"},
		{100, "o1\no2\no3\nc1\nc2\n"},
	} {
		b, err := TailLog(path, tc.n)
		if err != nil || string(b) != tc.want {
			t.Errorf("TailLog(%d) = %q, %v; want %q", tc.n, b, err, tc.want)
		}
	}
	os.Remove(path + ".1")
	if b, err := TailLog(path, 5); err != nil || string(b) != "c1\nc2\n" {
		t.Errorf("without .1: %q %v", b, err)
	}
	if _, err := TailLog(filepath.Join(dir, "none.log"), 5); !os.IsNotExist(err) {
		t.Errorf("missing log: %v", err)
	}
}
