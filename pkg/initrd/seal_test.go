package initrd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/cpio"
)

// Every segment ends with its seal, and the root segment, first, lists
// them all: PID 1 can tell an initrd the kernel unpacked only in part.
func TestEverySegmentEndsWithItsSeal(t *testing.T) {
	b := testBuild(t)
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, b.Contents, 1700000000); err != nil {
		t.Fatal(err)
	}
	cr := cpio.NewReader(&buf)
	var last []string // the last entry of each archive
	var expected string
	entries := 0
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for len(last) <= cr.Archive {
			last = append(last, "")
		}
		last[cr.Archive] = h.Name
		entries++
		if "/"+h.Name == bundle.SealsExpected {
			d, _ := io.ReadAll(cr)
			expected = string(d)
			// Among the very first entries: a kernel that unpacks only the
			// start of the initrd still leaves the list.
			if cr.Archive != 0 || entries > 4 {
				t.Errorf("the seal list is entry %d of archive %d, want among the first of the first", entries, cr.Archive)
			}
		}
	}
	names := strings.Split(strings.TrimSpace(expected), "\n")
	if len(names) < 2 || names[0] != "root" {
		t.Fatalf("seal list %q: want root first and the bundles' segments", expected)
	}
	if len(names) != len(last) {
		t.Fatalf("seal list names %d segments, the initrd has %d archives", len(names), len(last))
	}
	for i, name := range names {
		if want := strings.TrimPrefix(bundle.SealsDir, "/") + "/" + bundle.SealName(name); last[i] != want {
			t.Errorf("archive %d (%s) ends with %q, want its seal %q", i, name, last[i], want)
		}
	}
}
