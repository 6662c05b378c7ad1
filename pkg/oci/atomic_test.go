package oci

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

var errInjected = errors.New("injected write failure")

// halfWriter writes half of what it is given, then fails, as a full disk
// does.
type halfWriter struct{ w io.Writer }

func (h halfWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	return n, errInjected
}

// tempFiles lists what WriteFileAtomic may have left in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.json")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFileAtomic(file, 0o644, func(w io.Writer) error {
		_, err := halfWriter{w}.Write([]byte("new contents"))
		return err
	})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), file) {
		t.Errorf("error = %v, want the injected one, naming %s", err, file)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "old" {
		t.Errorf("after a failed write: %q, %v; want the old contents", b, err)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	err = WriteFileAtomic(file, 0o640, func(w io.Writer) error {
		_, err := io.WriteString(w, "new")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "new" || st.Mode().Perm() != 0o640 {
		t.Errorf("after a write: %q mode %v, %v; want \"new\" mode 0640", b, st.Mode(), err)
	}
}

// A write of index.json that fails half-way (a full disk, a killed
// process) leaves the old index whole: every image stays named.
func TestCacheIndexSurvivesFailedWrite(t *testing.T) {
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put("test/a:1", img); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(string(c.path), "index.json")
	before, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	listBefore, err := c.List()
	if err != nil {
		t.Fatal(err)
	}

	indexWriter = func(w io.Writer) io.Writer { return halfWriter{w} }
	t.Cleanup(func() { indexWriter = func(w io.Writer) io.Writer { return w } })
	other, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put("test/b:1", other); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "test/b:1") {
		t.Errorf("Put: %v, want the injected error naming test/b:1", err)
	}
	if err := c.Remove("test/a:1"); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "test/a:1") {
		t.Errorf("Remove: %v, want the injected error naming test/a:1", err)
	}

	after, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, before) {
		t.Errorf("index.json changed by failed writes:\n%s\nwas:\n%s", after, before)
	}
	if _, err := v1.ParseIndexManifest(bytes.NewReader(after)); err != nil {
		t.Errorf("index.json no longer parses: %v", err)
	}
	listAfter, err := c.List()
	if err != nil {
		t.Fatalf("list after failed writes: %v", err)
	}
	if !reflect.DeepEqual(listAfter, listBefore) {
		t.Errorf("cache lists %v, want %v", listAfter, listBefore)
	}
	if left := tempFiles(t, string(c.path)); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
