package initrd

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// opaqueLayers is the crafted input of the quadratic whiteout case: a
// lower layer of n directories with a file each, and an upper layer that
// makes each directory opaque and adds a file, except every tenth, which
// it deletes with a plain whiteout.
func opaqueLayers(t testing.TB, n int) []Layer {
	t.Helper()
	var lower, upper []tarEntry
	for i := range n {
		d := fmt.Sprintf("d%05d", i)
		lower = append(lower, tarEntry{d + "/", ""}, tarEntry{d + "/old", "old"})
		if i%10 == 9 {
			upper = append(upper, tarEntry{whiteoutPrefix + d, ""})
			continue
		}
		upper = append(upper, tarEntry{d + "/", ""}, tarEntry{d + "/" + opaqueWhiteout, ""}, tarEntry{d + "/new", "new"})
	}
	return []Layer{tarLayer(t, "lower", lower...), tarLayer(t, "upper", upper...)}
}

// scanVisits scans layers and returns how many tree nodes the whiteouts
// looked at, and the tree.
func scanVisits(t *testing.T, layers []Layer) (int, *tree) {
	t.Helper()
	fsys := newTree()
	for i, l := range layers {
		if err := fsys.scan(i, l); err != nil {
			t.Fatal(err)
		}
	}
	return fsys.whiteoutVisits, fsys
}

// Whiteouts cost in proportion to what they remove, not to the size of
// the tree: doubling the crafted input doubles the nodes they visit (a
// scan of every node per opaque directory quadruples it). The bound is
// on a count of operations, not on time.
func TestWhiteoutsScaleLinearly(t *testing.T) {
	const n = 1000
	small, _ := scanVisits(t, opaqueLayers(t, n))
	large, _ := scanVisits(t, opaqueLayers(t, 2*n))
	t.Logf("whiteout node visits: %d for %d directories, %d for %d", small, n, large, 2*n)
	if small == 0 {
		t.Fatal("no visits counted: the counter is not wired")
	}
	if large > 2*small+16 {
		t.Errorf("doubling the directories took whiteouts from %d to %d node visits: not linear", small, large)
	}
}

// The crafted layers still come out right: every directory keeps only its
// upper file, and every tenth directory is gone.
func TestOpaqueWhiteoutsManyDirectories(t *testing.T) {
	const n = 200
	_, fsys := scanVisits(t, opaqueLayers(t, n))
	for i := range n {
		d := fmt.Sprintf("d%05d", i)
		gone := i%10 == 9
		for _, p := range []string{d, d + "/new"} {
			if (fsys.nodes[p] != nil) == gone {
				t.Errorf("%s: present %v, want %v", p, fsys.nodes[p] != nil, !gone)
			}
		}
		if fsys.nodes[d+"/old"] != nil {
			t.Errorf("%s/old survived its directory's opaque whiteout", d)
		}
	}
	if len(fsys.nodes) != 2*(n-n/10) {
		t.Errorf("%d nodes, want %d", len(fsys.nodes), 2*(n-n/10))
	}
}

// Whiteouts remove what they must and nothing else, in the cases the
// index must get right: a deep subtree under an opaque directory, a
// same-named sibling ("a" vs "ab", "a.b"), entries of the opaque layer
// itself (kept, before or after the marker), a lower entry whose parents
// were removed by an earlier opaque marker in the same layer, and a
// re-created directory whose lower children a later whiteout removes.
func TestWhiteoutsRemoveExactly(t *testing.T) {
	layers := []Layer{
		tarLayer(t, "l1",
			tarEntry{"a/", ""}, tarEntry{"a/x/y/z", "z"}, tarEntry{"a/f", "f"},
			tarEntry{"ab/", ""}, tarEntry{"ab/keep", "k"}, tarEntry{"a.b/keep", "k"},
			tarEntry{"p/q/r/lower", "l"}, tarEntry{"s/t", "t"}),
		tarLayer(t, "l2",
			tarEntry{"a/mine", "m"}, tarEntry{"a/" + opaqueWhiteout, ""}, tarEntry{"a/x/after", "n"},
			tarEntry{"p/q/r/upper", "u"}, tarEntry{"p/" + opaqueWhiteout, ""},
			tarEntry{"s/", ""}, tarEntry{"s/u", "u"}, tarEntry{whiteoutPrefix + "s", ""}),
		tarLayer(t, "l3", tarEntry{"p/q/" + opaqueWhiteout, ""}),
	}
	// After l2, p/q/r/upper is there though its parents p/q and p/q/r
	// (from l1) went with p's opaque marker; l3's marker in p/q must
	// still find it.
	if _, fsys := scanVisits(t, layers[:2]); fsys.nodes["p/q/r/upper"] == nil || fsys.nodes["p/q"] != nil {
		t.Fatalf("after l2: p/q/r/upper %v, p/q %v; want the file without its parent", fsys.nodes["p/q/r/upper"], fsys.nodes["p/q"])
	}
	_, fsys := scanVisits(t, layers)
	var got []string
	for _, d := range fsys.dirs() {
		got = append(got, d+"/")
	}
	for name, n := range fsys.nodes {
		if !n.isDir() {
			got = append(got, name)
		}
	}
	want := []string{
		"a/", "a/x/", "ab/", "a.b/", "p/", "s/",
		"a/mine", "a/x/after", "ab/keep", "a.b/keep", "s/u",
	}
	if g, w := sorted(got), sorted(want); g != w {
		t.Errorf("tree:\n%s\nwant:\n%s", g, w)
	}
}

func sorted(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, "\n")
}

// BenchmarkOpaqueWhiteouts8k unpacks the crafted layers with 8192
// directories (the case reported at 2.2 s), for a before/after figure.
func BenchmarkOpaqueWhiteouts8k(b *testing.B) {
	ls := opaqueLayers(b, 8192)
	for b.Loop() {
		a := NewArchive(io.Discard, 0)
		if err := Unpack(a, "", ls); err != nil {
			b.Fatal(err)
		}
		a.Close()
	}
}
