package oci

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/keel-os/keel/pkg/progress"
)

// TestPullShowsBytesFetchedAndLayersCached pulls an image, then one that
// shares all but one of its layers, and checks each pull's summary: the
// bytes of the layers fetched and how many the cache already had.
func TestPullShowsBytesFetchedAndLayersCached(t *testing.T) {
	_, host := testRegistry(t)
	base, err := random.Image(2000, 3)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Layer(3000, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	more, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	push(t, host+"/test/base:1", base)
	push(t, host+"/test/more:1", more)

	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out, lines strings.Builder
	d := progress.New(&out, progress.Plain)
	r := &Resolver{Cache: cache, Progress: &lines, Tasks: d}

	var baseBytes int64
	ls, _ := base.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		baseBytes += n
	}
	extraBytes, _ := extra.Size()

	for _, c := range []struct {
		ref   string
		bytes int64
		note  string
	}{
		{host + "/test/base:1", baseBytes, "0 of 3 layers cached"},
		{host + "/test/more:1", extraBytes, "3 of 4 layers cached"},
	} {
		out.Reset()
		img, err := r.Image(context.Background(), c.ref)
		if err != nil {
			t.Fatal(err)
		}
		// The counting wrapper must not change what is stored.
		got, _ := img.Digest()
		src := base
		if strings.Contains(c.ref, "more") {
			src = more
		}
		if w, _ := src.Digest(); got != w {
			t.Errorf("%s: cached digest %s, want %s", c.ref, got, w)
		}
		line := regexp.QuoteMeta(fmt.Sprintf("pull %s: %s in ", c.ref, progress.Bytes(c.bytes))) +
			`[0-9.]+s( \([^)]*\))?` + regexp.QuoteMeta(", "+c.note) + "\n"
		if !regexp.MustCompile("^" + line + "$").MatchString(out.String()) {
			t.Errorf("pull %s showed\n%q\nwant a line matching\n%q", c.ref, out.String(), line)
		}
	}
	if lines.Len() != 0 {
		t.Errorf("Progress got %q; with Tasks set, pulls show only as tasks", lines.String())
	}
}

// TestFailedPullLeavesNoSummary checks that a pull that fails shows no
// summary line: its error says what happened.
func TestFailedPullLeavesNoSummary(t *testing.T) {
	_, host := testRegistry(t)
	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r := &Resolver{Cache: cache, Tasks: progress.New(&out, progress.Plain)}
	if err := r.Pull(context.Background(), host+"/test/missing:1"); err == nil {
		t.Fatal("pull of a missing image succeeded")
	}
	if out.Len() != 0 {
		t.Errorf("failed pull showed %q", out.String())
	}
}
