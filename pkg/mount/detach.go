package mount

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Detach lazily unmounts target (MNT_DETACH: it goes once nothing uses it)
// and forgets its newest record. It is for mounts remade over a service's
// life, such as a namespace bound anew on every restart: left in place,
// each would stack on the last and keep the old namespace alive.
func (t *Table) Detach(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, tg := range slices.Backward(t.targets) {
		if tg == target {
			t.targets = slices.Delete(t.targets, i, i+1)
			break
		}
	}
	return nil
}
