package qemu

import (
	"fmt"
	"strconv"

	units "github.com/docker/go-units"
)

// ParseMemory reads a guest memory size in MiB: a plain number is MiB, as
// QEMU's -m and earlier keel versions take it; otherwise a size with a
// binary unit, as `linuxkit run` takes it (2G, 512M, 1.5G).
func ParseMemory(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("memory %q: want a positive size", s)
		}
		return n, nil
	}
	b, err := units.RAMInBytes(s)
	if err != nil || b <= 0 {
		return 0, fmt.Errorf("memory %q: want MiB or a size such as 2G or 512M", s)
	}
	if b%units.MiB != 0 {
		return 0, fmt.Errorf("memory %q: want a whole number of MiB", s)
	}
	return int(b / units.MiB), nil
}
