package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrCorruptBlob is wrapped by every error about a blob whose content does
// not match its digest or size.
var ErrCorruptBlob = errors.New("corrupt blob")

// BlobError says which blob of which image is damaged, and how.
type BlobError struct {
	// Image is the reference the blob was read for.
	Image  string
	Digest v1.Hash
	// Where is the file or archive the blob was read from.
	Where string
	// Problem: "is missing", "has 100 bytes, want 4096", "has digest sha256:...".
	Problem string
	// Removed is set when the damaged file was deleted from the cache, so
	// that the next build fetches it again.
	Removed bool
}

func (e *BlobError) Error() string {
	s := fmt.Sprintf("blob %s in %s %s", e.Digest, e.Where, e.Problem)
	if e.Image != "" {
		s = "image " + e.Image + ": " + s
	}
	if e.Removed {
		s += " (removed it from the cache: build again to fetch it again)"
	}
	return s
}

func (e *BlobError) Unwrap() error { return ErrCorruptBlob }

// verifyingReader hashes a blob (sha256 or sha512) as it is read, and
// fails at its end when the content does not have the digest and size its
// descriptor gives: a corrupt blob is never taken as good, and nobody pays
// for a second pass over the bytes.
//
// Close drains what the reader left unread before checking: a tar reader
// stops at the archive's end marker, short of the gzip trailer and the
// padding, and a blob is only proved whole once every byte is hashed.
type verifyingReader struct {
	f       io.ReadCloser
	want    v1.Descriptor
	h       hash.Hash
	n       int64
	done    bool
	err     error // the verdict, once done
	onError func(*BlobError) error
	// onOK, when not nil, is called once the blob is proved right.
	onOK  func()
	image string
	where string
}

// newVerifyingReader wraps f, the content of the blob desc. onError, when
// not nil, is called once with a mismatch and returns the error to give
// (the cache removes the file there).
func newVerifyingReader(f io.ReadCloser, desc v1.Descriptor, image, where string, onError func(*BlobError) error) *verifyingReader {
	var h hash.Hash
	switch desc.Digest.Algorithm {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	}
	return &verifyingReader{f: f, want: desc, h: h, onError: onError, image: image, where: where}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done {
		if v.err != nil {
			return 0, v.err
		}
		return 0, io.EOF
	}
	n, err := v.f.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	v.n += int64(n)
	if v.n > v.want.Size {
		// Stop before hashing a file of any length that is already wrong.
		return n, v.finish()
	}
	if errors.Is(err, io.EOF) {
		if ferr := v.finish(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// finish decides whether what was read is the blob.
func (v *verifyingReader) finish() error {
	if v.done {
		return v.err
	}
	v.done = true
	var problem string
	switch {
	case v.n > v.want.Size:
		problem = fmt.Sprintf("has more than the %d bytes it should (corrupt)", v.want.Size)
	case v.n < v.want.Size:
		problem = fmt.Sprintf("has %d bytes, want %d (partial or corrupt)", v.n, v.want.Size)
	case v.h == nil:
		return nil // an algorithm keel does not know: the size is all it can check
	default:
		got := fmt.Sprintf("%x", v.h.Sum(nil))
		if got == v.want.Digest.Hex {
			if v.onOK != nil {
				v.onOK()
			}
			return nil
		}
		problem = fmt.Sprintf("has digest %s:%s (corrupt)", v.want.Digest.Algorithm, got)
	}
	be := &BlobError{Image: v.image, Digest: v.want.Digest, Where: v.where, Problem: problem}
	v.err = be
	if v.onError != nil {
		v.err = v.onError(be)
	}
	return v.err
}

// Close checks the blob, reading to its end whatever the caller left.
func (v *verifyingReader) Close() error {
	var err error
	if !v.done {
		if _, cerr := io.Copy(io.Discard, v); cerr != nil {
			err = cerr
		}
	}
	if cerr := v.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// removeCorrupt deletes a damaged blob from the cache: a file whose content
// does not match its name is of no use to anyone, and the layout writer
// skips a blob whose file exists with the right size, so a pull could
// never repair it in place.
func removeCorrupt(path string) func(*BlobError) error {
	return func(e *BlobError) error {
		if err := os.Remove(path); err == nil || errors.Is(err, os.ErrNotExist) {
			e.Removed = true
		}
		return e
	}
}
