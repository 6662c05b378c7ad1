package oci

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Lock records what a build used, so that it can be repeated exactly:
// every image reference of the YAML and the manifest digest it resolved to.
type Lock struct {
	Keel   string            `json:"keel"`
	Arch   string            `json:"arch"`
	Kernel string            `json:"kernel"`
	Images map[string]string `json:"images"`
}

// WriteLock writes l to file atomically (WriteFileAtomic).
func WriteLock(file string, l Lock) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("write lock %s: %w", file, err)
	}
	err = WriteFileAtomic(file, 0o644, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}

// ReadLock reads a lock file written by WriteLock.
func ReadLock(file string) (Lock, error) {
	var l Lock
	b, err := os.ReadFile(file)
	if err != nil {
		return l, fmt.Errorf("read lock: %w", err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("read lock %s: %w", file, err)
	}
	return l, nil
}

// Pinned is ref pinned to digest: its repository with @digest, which both
// the cache and the registry resolve to exactly that manifest.
func Pinned(ref, digest string) (string, error) {
	c, err := CanonicalRef(ref)
	if err != nil {
		return "", err
	}
	if at := strings.LastIndex(c, "@"); at >= 0 {
		c = c[:at]
	} else if colon := strings.LastIndex(c, ":"); colon > strings.LastIndex(c, "/") {
		c = c[:colon]
	}
	return c + "@" + digest, nil
}
