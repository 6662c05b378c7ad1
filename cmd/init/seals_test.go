package main

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
)

func TestCheckInitrd(t *testing.T) {
	root := t.TempDir()
	params := filepath.Join(root, "boot_params")
	bp := make([]byte, 0x230)
	binary.LittleEndian.PutUint32(bp[0x21c:], 46<<20)
	if err := os.WriteFile(params, bp, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	if !checkInitrd(log, root, params) {
		t.Fatal("an initrd without seals (an older keel build) counted as incomplete")
	}
	if err := os.MkdirAll(filepath.Join(root, bundle.SealsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, bundle.SealsExpected), []byte("root\ncontainers/services/web\n"), 0o644)
	os.WriteFile(filepath.Join(root, bundle.SealsDir, "root"), nil, 0o444)
	if checkInitrd(log, root, params) {
		t.Fatal("an initrd missing its web segment counted as complete")
	}
	for _, want := range []string{"initrd incomplete", "containers/services/web", bootFailed + ": the initrd did not fit", "initrd=46MB", "about 115MB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	os.WriteFile(filepath.Join(root, bundle.SealsDir, "containers_services_web"), nil, 0o444)
	if !checkInitrd(log, root, params) {
		t.Fatal("a whole initrd counted as incomplete")
	}
	if initrdSize(filepath.Join(root, "none")) != 0 {
		t.Error("initrdSize of a missing file")
	}
}
