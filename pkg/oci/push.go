package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push copies the cached image ref to the registry reference dest, with
// the same credentials, transport and timeouts as pulls (a registry on a
// loopback address is spoken to over plain HTTP). Blobs the registry
// already has are not sent again. It returns dest as pushed, by digest.
func (r *Resolver) Push(ctx context.Context, ref, dest string) (string, error) {
	img, err := r.Cache.Image(ref)
	if err != nil {
		return "", err
	}
	nref, err := parseRemoteRef(dest)
	if err != nil {
		return "", err
	}
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	if err := remote.Write(nref, img,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(r.roundTripper())); err != nil {
		return "", fmt.Errorf("push %s to %s: %w", ref, dest, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push %s to %s: %w", ref, dest, err)
	}
	return nref.Context().Digest(d.String()).String(), nil
}
