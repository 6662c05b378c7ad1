package mount

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindPartitionByName(t *testing.T) {
	sys := t.TempDir()
	for dev, uevent := range map[string]string{
		"vda":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
		"vda1": "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=keel-other\n",
		"vdb1": "MAJOR=254\nMINOR=17\nDEVNAME=vdb1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=keel-0123456789abcdef01234567\n",
	} {
		d := filepath.Join(sys, "class", "block", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := FindPartition(sys, "keel-0123456789abcdef01234567", 0)
	if err != nil || dev != "/dev/vdb1" {
		t.Errorf("FindPartition = %q, %v, want /dev/vdb1", dev, err)
	}
	if dev, err := FindPartition(sys, "keel-missing", 0); !errors.Is(err, ErrNoPartition) {
		t.Errorf("FindPartition of a missing name = %q, %v, want ErrNoPartition", dev, err)
	}
	if dev, err := FindPartition(t.TempDir(), "keel-x", 0); !errors.Is(err, ErrNoPartition) {
		t.Errorf("FindPartition with no block devices = %q, %v, want ErrNoPartition", dev, err)
	}
}
