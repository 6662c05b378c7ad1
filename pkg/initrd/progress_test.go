package initrd

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"

	"github.com/keel-os/keel/pkg/progress"
)

// TestWriteShowsEachOutput builds twice with a progress display and checks
// the line each output file leaves: the cpio bytes made and the
// compressed bytes they became, and which segments came from the cache.
func TestWriteShowsEachOutput(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "segments")
	b := testBuild(t)
	b.SegmentCache = cache
	for _, warm := range []bool{false, true} {
		var out bytes.Buffer
		b.Progress = progress.New(&out, progress.Plain)
		o := Outputs{Dir: t.TempDir(), Name: "x", Formats: []Format{FormatKernelInitrd, FormatTar}}
		if err := Write(o, b); err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(o.Initrd())
		if err != nil {
			t.Fatal(err)
		}
		// testBuild's microcode is 30 bytes, padded to 32, and not counted:
		// it is copied, not made.
		segs := img[32:]
		zr, err := gzip.NewReader(bytes.NewReader(segs))
		if err != nil {
			t.Fatal(err)
		}
		cpio, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		// testBuild's segments: the root one, and one per image of
		// its bundles (bundles of one image share a segment).
		segments := len(mustSegments(t, b))
		made, reused := int64(len(cpio)), "0 reused"
		if warm {
			made, reused = 0, fmt.Sprintf("%d reused", segments)
		}
		tarFile, err := os.Stat(o.Tar())
		if err != nil {
			t.Fatal(err)
		}
		const took = ` in [0-9.]+s( \([^)]*\))?`
		want := []string{
			"^" + regexp.QuoteMeta("initrd x-initrd.img: "+progress.Bytes(made)+" -> "+progress.Bytes(int64(len(segs)))) +
				took + regexp.QuoteMeta(fmt.Sprintf(", gzip, %d segments, ", segments)+reused) + "$",
			"^" + regexp.QuoteMeta("tar x.tar: "+progress.Bytes(tarFile.Size())) + took + "$",
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("warm %v: progress\n%s\nwant %d lines", warm, out.String(), len(want))
		}
		for i, re := range want {
			if !regexp.MustCompile(re).MatchString(lines[i]) {
				t.Errorf("warm %v: line %q does not match %q", warm, lines[i], re)
			}
		}
	}
}

// TestFailedWriteLeavesNoSummary checks that an output that fails shows
// no summary: the error says what happened.
func TestFailedWriteLeavesNoSummary(t *testing.T) {
	b := testBuild(t)
	b.Contents.Init = append(b.Contents.Init, Image{Ref: "broken", Image: brokenImage{empty.Image}})
	var out bytes.Buffer
	b.Progress = progress.New(&out, progress.Plain)
	if err := Write(Outputs{Dir: t.TempDir(), Name: "x"}, b); err == nil {
		t.Fatal("build with a broken image succeeded")
	}
	if out.Len() != 0 {
		t.Errorf("failed write showed %q", out.String())
	}
}

// brokenImage cannot give its layers.
type brokenImage struct{ v1.Image }

func (brokenImage) Layers() ([]v1.Layer, error) { return nil, errors.New("no layers today") }

func mustSegments(t *testing.T, b Build) []segment {
	t.Helper()
	segs, err := b.Contents.segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 2 {
		t.Fatalf("testBuild makes %d segments; the test wants several", len(segs))
	}
	return segs
}
