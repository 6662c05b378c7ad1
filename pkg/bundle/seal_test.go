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

// The list's lines say each segment's tmpfs bytes; lists of older builds
// name the segments only, and still tell what is missing.
func TestExpectedSealsFormats(t *testing.T) {
	for _, c := range []struct {
		list  string // SealsTmpfs; "" for none
		want  []Seal
		bytes int64
		ok    bool
	}{
		{"", []Seal{{"root", -1}, {"containers/services/web", -1}}, 0, false},
		{"root 70123520\ncontainers/services/web 8192\n", []Seal{{"root", 70123520}, {"containers/services/web", 8192}}, 70123520 + 8192, true},
		{"root 4096\ncontainers/services/web\n", []Seal{{"root", 4096}, {"containers/services/web", -1}}, 0, false},
	} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, SealsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		// The names alone, as every keel writes them (and an older PID 1
		// reads them); the sizes beside.
		if err := os.WriteFile(filepath.Join(root, SealsExpected), []byte("root\ncontainers/services/web\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if c.list != "" {
			if err := os.WriteFile(filepath.Join(root, SealsTmpfs), []byte(c.list), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(root, SealsDir, "root"), nil, 0o444)
		seals, err := ExpectedSeals(root)
		if err != nil || !slices.Equal(seals, c.want) {
			t.Errorf("ExpectedSeals(%q) = %v, %v; want %v", c.list, seals, err, c.want)
		}
		if n, ok := SealsBytes(seals); n != c.bytes || ok != c.ok {
			t.Errorf("SealsBytes(%q) = %d, %v; want %d, %v", c.list, n, ok, c.bytes, c.ok)
		}
		missing, total, err := MissingSeals(root)
		if err != nil || total != 2 || !slices.Equal(missing, []string{"containers/services/web"}) {
			t.Errorf("MissingSeals(%q) = %v, %d, %v; want the web segment of 2", c.list, missing, total, err)
		}
	}
}
