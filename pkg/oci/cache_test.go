package oci

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// Two Cache values on one directory stand for two keel processes: only
// the file lock orders them. No image may be lost and no reader may see a
// half-written index.
func TestCacheConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	var caches [2]*Cache
	for i := range caches {
		c, err := OpenCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		caches[i] = c
	}
	const perCache = 6
	var wg sync.WaitGroup
	errs := make(chan error, 4*perCache)
	for ci, c := range caches {
		for i := range perCache {
			wg.Add(2)
			go func() {
				defer wg.Done()
				img, err := random.Image(64, 1)
				if err != nil {
					errs <- err
					return
				}
				errs <- c.Put(fmt.Sprintf("test/c%d:%d", ci, i), img)
			}()
			go func() {
				defer wg.Done()
				_, err := c.List()
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := caches[0].List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2*perCache {
		t.Errorf("%d images cached, want %d: %v", len(list), 2*perCache, list)
	}
	if _, err := caches[1].Image("test/c0:3"); err != nil {
		t.Error(err)
	}
}
