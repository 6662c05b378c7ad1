package spec

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxAccountFile bounds how much of /etc/passwd or /etc/group is read.
const maxAccountFile = 4 << 20

// imageUser resolves an image's USER ("name", "uid", "name:group",
// "uid:gid") into the process user, the way a runtime does inside the
// container: through the image's own /etc/passwd and /etc/group, so that
// a bare uid also gets its primary group and supplementary groups.
func imageUser(img v1.Image, spec string) (specs.User, error) {
	if spec == "" {
		return specs.User{}, nil
	}
	passwd, group, err := accountFiles(img)
	if err != nil {
		return specs.User{}, fmt.Errorf("resolve image user %q: %w", spec, err)
	}
	eu, err := user.GetExecUser(spec, nil, passwd, group)
	if err != nil {
		return specs.User{}, fmt.Errorf("resolve image user %q: %w", spec, err)
	}
	u := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	for _, g := range eu.Sgids {
		if g != eu.Gid {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return u, nil
}

// accountFiles returns the image's /etc/passwd and /etc/group; a reader is
// nil when the image has no such file.
func accountFiles(img v1.Image) (passwd, group io.Reader, err error) {
	if img == nil {
		return nil, nil, nil
	}
	// mutate.Extract gives the top-most version of each path first, with
	// whiteouts applied, which is all a lookup of two files needs.
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for passwd == nil || group == nil {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read image: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var dst *io.Reader
		switch path.Clean("/" + h.Name) {
		case "/etc/passwd":
			dst = &passwd
		case "/etc/group":
			dst = &group
		default:
			continue
		}
		if *dst != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxAccountFile))
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", h.Name, err)
		}
		*dst = bytes.NewReader(b)
	}
	return passwd, group, nil
}
