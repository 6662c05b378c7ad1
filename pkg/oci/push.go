package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	pushed, err := r.PushImage(ctx, img, dest)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return pushed, nil
}

// PushImage writes img to the registry reference dest, as Push does a
// cached image: keel push sends images it assembles from build outputs
// this way, with the same credentials, TLS and timeouts. It returns dest
// by digest.
func (r *Resolver) PushImage(ctx context.Context, img v1.Image, dest string) (string, error) {
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
		return "", fmt.Errorf("push to %s: %w", dest, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push to %s: %w", dest, err)
	}
	return nref.Context().Digest(d.String()).String(), nil
}
