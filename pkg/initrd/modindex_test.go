package initrd

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"github.com/keel-os/keel/pkg/kmod"
)

// TestModuleIndexOfARealKernel reads a real kernel.tar when one is given,
// e.g. KEEL_TEST_KERNEL_TAR=/tmp/kernel.tar (from keel/kernel:6.1.0-56),
// and matches the modaliases of a QEMU q35 guest's virtio devices.
func TestModuleIndexOfARealKernel(t *testing.T) {
	p := os.Getenv("KEEL_TEST_KERNEL_TAR")
	if p == "" {
		t.Skip("KEEL_TEST_KERNEL_TAR not set")
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := BuildModuleIndex(f)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := kmod.ReadIndex(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Kernels) != 1 {
		t.Fatalf("%d releases", len(ix.Kernels))
	}
	k := &ix.Kernels[0]
	t.Logf("%s: %d modules, %d built in, index %d bytes", k.Release, len(k.Modules), len(k.Builtin), len(b))
	for modalias, want := range map[string][]string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00": {"virtio_pci"},
		"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00": {"virtio_pci"},
		"virtio:d00000001v00001AF4":                             {"virtio_net"},
		"virtio:d00000002v00001AF4":                             {"virtio_blk"},
		"virtio:d00000003v00001AF4":                             {"virtio_console"},
		"virtio:d00000004v00001AF4":                             {"virtio_rng"},
		"acpi:LNXPWRBN:":                                        {"button"},
	} {
		if got := k.Lookup(modalias); !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%s) = %q, want %q", modalias, got, want)
		}
	}
	mods, err := k.Tree().Closure("virtio_net", "overlay")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	t.Logf("closure of virtio_net, overlay: %q", names)
}
