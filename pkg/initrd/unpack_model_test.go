package initrd

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestUnpackMatchesModel applies random layers two ways: with Unpack into
// a cpio archive that GNU cpio extracts, and with plain file operations on
// a directory, applied in order, as a runtime's snapshotter would. The two
// trees must be the same: names, types, contents, symlink targets and
// which names share an inode.
func TestUnpackMatchesModel(t *testing.T) {
	if testing.Short() {
		t.Skip("model test")
	}
	for seed := int64(1); seed <= 100; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			model := t.TempDir()
			var layers []Layer
			for li := range 3 {
				layers = append(layers, randomLayer(t, rng, model, li))
			}
			archive, err := unpackToArchive(t, "", layers...)
			if err != nil {
				t.Fatal(err)
			}
			got := extract(t, archive)
			if a, b := describeTree(t, model), describeTree(t, got); a != b {
				t.Fatalf("trees differ\nmodel:\n%s\nunpacked:\n%s", a, b)
			}
		})
	}
}

// randomLayer makes a layer of random changes that are valid against the
// model directory, and applies them to it. Whiteouts come first in the
// layer, so that applying the tar in order is the OCI semantics.
func randomLayer(t *testing.T, rng *rand.Rand, model string, li int) Layer {
	t.Helper()
	names := []string{"a", "b", "c"}
	randPath := func() string {
		parts := make([]string, 1+rng.Intn(3))
		for i := range parts {
			parts[i] = names[rng.Intn(len(names))]
		}
		return strings.Join(parts, "/")
	}
	// usable says whether every parent of p is a directory or missing.
	usable := func(p string) bool {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			if fi, err := os.Lstat(filepath.Join(model, d)); err == nil && !fi.IsDir() {
				return false
			}
		}
		return true
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, data)
	}
	if li > 0 {
		for range 2 {
			p := randPath()
			if !usable(p) {
				continue
			}
			if rng.Intn(2) == 0 {
				write(&tar.Header{Name: filepath.Join(filepath.Dir(p), ".wh."+filepath.Base(p)), Typeflag: tar.TypeReg}, "")
				os.RemoveAll(filepath.Join(model, p))
			} else if fi, err := os.Lstat(filepath.Join(model, p)); err == nil && fi.IsDir() {
				write(&tar.Header{Name: p + "/.wh..wh..opq", Typeflag: tar.TypeReg}, "")
				entries, _ := os.ReadDir(filepath.Join(model, p))
				for _, e := range entries {
					os.RemoveAll(filepath.Join(model, p, e.Name()))
				}
			}
		}
	}
	for i := range 8 {
		p := randPath()
		if !usable(p) {
			continue
		}
		full := filepath.Join(model, p)
		fi, statErr := os.Lstat(full)
		// What extraction does for an entry whose parents are missing.
		mkParents := func() { os.MkdirAll(filepath.Dir(full), 0o755) }
		switch rng.Intn(4) {
		case 0: // directory
			write(&tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
			if statErr == nil && !fi.IsDir() {
				os.Remove(full)
			}
			mkParents()
			os.Mkdir(full, 0o755)
		case 1: // file
			data := fmt.Sprintf("layer %d entry %d", li, i)
			write(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644}, data)
			os.RemoveAll(full)
			mkParents()
			os.WriteFile(full, []byte(data), 0o644)
		case 2: // symlink
			write(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: "target-" + p, Mode: 0o777}, "")
			os.RemoveAll(full)
			mkParents()
			os.Symlink("target-"+p, full)
		case 3: // hard link to a file the model has
			var files []string
			filepath.WalkDir(model, func(q string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					rel, _ := filepath.Rel(model, q)
					files = append(files, rel)
				}
				return nil
			})
			slices.Sort(files)
			if len(files) == 0 {
				continue
			}
			target := files[rng.Intn(len(files))]
			if target == p || strings.HasPrefix(target, p+"/") {
				continue
			}
			write(&tar.Header{Name: p, Typeflag: tar.TypeLink, Linkname: target}, "")
			os.RemoveAll(full)
			mkParents()
			if err := os.Link(filepath.Join(model, target), full); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	b := buf.Bytes()
	return Layer{Name: fmt.Sprintf("layer %d", li), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// describeTree lists a directory tree in a comparable form; hard links are
// shown as groups of names sharing an inode.
func describeTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64][]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			lines = append(lines, rel+"/")
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, rel+" -> "+target)
		default:
			b, _ := os.ReadFile(p)
			lines = append(lines, rel+" = "+string(b))
			fi, _ := os.Lstat(p)
			ino := fi.Sys().(*syscall.Stat_t).Ino
			inodes[ino] = append(inodes[ino], rel)
		}
		return nil
	})
	for _, group := range inodes {
		if len(group) > 1 {
			slices.Sort(group)
			lines = append(lines, "link "+strings.Join(group, " "))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
