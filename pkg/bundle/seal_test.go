package bundle

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMissingSeals(t *testing.T) {
	root := t.TempDir()
	if missing, total, err := MissingSeals(root); missing != nil || total != 0 || err != nil {
		t.Fatalf("an initrd without seals: %v %d %v, want nothing missing", missing, total, err)
	}
	if err := os.MkdirAll(filepath.Join(root, SealsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"root", "containers/onboot/000-dhcp", "containers/services/web"}
	if err := os.WriteFile(filepath.Join(root, SealsExpected), []byte("root\ncontainers/onboot/000-dhcp\ncontainers/services/web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[:2] { // the kernel stopped before the last segment's end
		if err := os.WriteFile(filepath.Join(root, SealsDir, SealName(n)), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	missing, total, err := MissingSeals(root)
	if err != nil || total != 3 || !slices.Equal(missing, []string{"containers/services/web"}) {
		t.Fatalf("MissingSeals = %v, %d, %v; want the web segment of 3", missing, total, err)
	}
	if SealName("containers/services/web") != "containers_services_web" {
		t.Errorf("SealName: %q", SealName("containers/services/web"))
	}
}
