package initrd

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keel-os/keel/pkg/config"
	"github.com/keel-os/keel/pkg/cpio"
)

// cpioToTar is how the tar output was made before the tar sink: the
// initrd's cpio converted. It stays as the reference the tar sink must
// match byte for byte.
//
// cpioToTar copies the entries of the cpio archives in r into tw. Hard
// links (same inode, two or more links, within one archive) become tar
// hard links to the first name; a directory written already (in skip or
// earlier) is not written again.
func cpioToTar(tw *tar.Writer, r io.Reader, skip map[string]bool) error {
	cr := cpio.NewReader(r)
	dirs := map[string]bool{}
	for d := range skip {
		dirs[d] = true
	}
	links := map[uint32]string{}
	archive := 0
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if cr.Archive != archive {
			archive, links = cr.Archive, map[uint32]string{}
		}
		th := &tar.Header{
			Name: h.Name, Mode: int64(h.Mode & cpio.ModePerm), Uid: int(h.UID), Gid: int(h.GID),
			ModTime: unixTime(h.Mtime), Format: tar.FormatPAX,
		}
		switch h.Mode & cpio.ModeType {
		case cpio.ModeDir:
			if dirs[h.Name] {
				continue
			}
			dirs[h.Name] = true
			th.Typeflag, th.Name = tar.TypeDir, h.Name+"/"
		case cpio.ModeSymlink:
			th.Typeflag, th.Linkname = tar.TypeSymlink, h.Linkname
		case cpio.ModeChar, cpio.ModeBlock:
			th.Typeflag = tar.TypeChar
			if h.Mode&cpio.ModeType == cpio.ModeBlock {
				th.Typeflag = tar.TypeBlock
			}
			th.Devmajor, th.Devminor = int64(h.Rdevmajor), int64(h.Rdevminor)
		case cpio.ModeFIFO:
			th.Typeflag = tar.TypeFifo
		case cpio.ModeRegular:
			th.Typeflag, th.Size = tar.TypeReg, h.Size
			if h.Nlink >= 2 {
				if first, ok := links[h.Ino]; ok {
					th.Typeflag, th.Linkname, th.Size = tar.TypeLink, first, 0
				} else {
					links[h.Ino] = h.Name
				}
			}
		default:
			return fmt.Errorf("cpio: %s: file type %#o has no tar equivalent", h.Name, h.Mode&cpio.ModeType)
		}
		if err := tw.WriteHeader(th); err != nil {
			return err
		}
		if th.Size > 0 {
			if _, err := io.Copy(tw, cr); err != nil {
				return err
			}
		}
	}
}

// TestTarSinkMatchesConvertedCPIO proves the tar output unchanged by the
// move to a tar sink: for initrds with shared images (hard links across
// rootfs, a lower directory), read-only bundles with mount points, files,
// symlinks and a device node, the tar the sink writes is byte for byte
// the tar converted from the initrd's cpio, as the tar output was made
// before.
func TestTarSinkMatchesConvertedCPIO(t *testing.T) {
	overlays := testBuild(t).Contents
	readonly := testBuild(t).Contents
	for i := range readonly.Bundles[:2] {
		readonly.Bundles[i].Config.Root.Readonly = true
		readonly.Bundles[i].Config.Mounts = []specs.Mount{{Destination: "/dev"}, {Destination: "/sys/fs/cgroup"}}
	}
	mixed := testBuild(t).Contents
	mixed.Bundles[1].Config.Root.Readonly = true
	mixed.Files = []config.File{
		{Path: "etc/motd", Contents: "hello\n", Mode: 0o644},
		{Path: "etc/dir", Kind: config.Directory, Mode: 0o750},
		{Path: "etc/link", Kind: config.Symlink, Target: "motd", Mode: 0o777},
	}
	noOverlays := testBuild(t).Contents
	noOverlays.Overlays = false
	for name, c := range map[string]Contents{"overlays": overlays, "readonly": readonly, "mixed": mixed, "no overlays": noOverlays} {
		t.Run(name, func(t *testing.T) {
			var want bytes.Buffer
			tw := tar.NewWriter(&want)
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(WriteCPIO(pw, c, 1700000000)) }()
			if err := cpioToTar(tw, pr, map[string]bool{"boot": true}); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			tw = tar.NewWriter(&got)
			if err := writeTree(newTarSink(tw, "boot"), c, 1700000000); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("tar sink wrote %d bytes that differ from the %d of the converted cpio", got.Len(), want.Len())
			}
			if want.Len() < 10<<10 {
				t.Errorf("reference tar is only %d bytes: the test compares too little", want.Len())
			}
		})
	}
}
