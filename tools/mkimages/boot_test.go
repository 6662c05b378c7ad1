package main

import (
	"testing"

	"github.com/keel-os/keel/pkg/bootimage"
)

// keel build asks for bootimage.DefaultRef; mkimages must make that tag
// from the pinned versions, or builds would find no boot image.
func TestBootTagIsDefaultRef(t *testing.T) {
	v, err := readVersions("../versions.env")
	if err != nil {
		t.Fatal(err)
	}
	if got := "keel/boot:" + bootTag(v); got != bootimage.DefaultRef {
		t.Errorf("versions.env makes %s, keel build asks for bootimage.DefaultRef %s", got, bootimage.DefaultRef)
	}
}

func TestCheckPinned(t *testing.T) {
	for _, c := range []struct {
		version, pin string
		ok           bool
	}{
		{"3:6.04~git20190206.bf6db5b4+dfsg1-3", "6.04", true},
		{"252.39-1~deb12u2", "252", true},
		{"253.1-1", "252", false},
		{"2520-1", "252", false},
	} {
		err := checkPinned(debPackage{Name: "p", Version: c.version}, c.pin)
		if (err == nil) != c.ok {
			t.Errorf("checkPinned(%s, %s) = %v", c.version, c.pin, err)
		}
	}
}
