package oci

import (
	"fmt"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/keel-os/keel/pkg/progress"
)

// Pulls are watched by counting the bytes read from each layer's stream
// as the cache copies it, rather than with remote.WithProgress: that
// option reports on remote.Write (a push), not on reading an image into a
// layout.

// pullCounter counts what one pull fetches.
type pullCounter struct {
	task *progress.Task
	// layers is how many layers the image has; fetched how many were
	// read. The rest were in the cache already: whether the cache opens
	// their streams and closes them unread or never opens them at all,
	// they are not fetched.
	layers, fetched atomic.Int64
}

// startPull starts showing a pull: as a task when r.Tasks is set (nil
// otherwise), else as a line on r.Progress.
func (r *Resolver) startPull(ref string) *progress.Task {
	if r.Tasks == nil {
		r.logf("pull %s\n", ref)
		return nil
	}
	return r.Tasks.Start("pull " + ref)
}

// watchPull wraps img so that reading its layers advances task; with no
// task, img is returned as is. The task's total is the size of every
// layer, from the manifest (already fetched: no request is made).
func watchPull(img v1.Image, task *progress.Task) (v1.Image, *pullCounter) {
	if task == nil {
		return img, nil
	}
	pc := &pullCounter{task: task}
	if m, err := img.Manifest(); err == nil {
		var total int64
		for _, l := range m.Layers {
			total += l.Size
		}
		task.SetTotal(total)
		pc.layers.Store(int64(len(m.Layers)))
	}
	return countedImage{Image: img, pc: pc}, pc
}

// note is the end of the pull's summary line.
func (pc *pullCounter) note() string {
	if pc == nil {
		return ""
	}
	n := pc.layers.Load()
	return fmt.Sprintf("%d of %d layers cached", max(n-pc.fetched.Load(), 0), n)
}

type countedImage struct {
	v1.Image
	pc *pullCounter
}

func (c countedImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = countedLayer{Layer: l, pc: c.pc}
	}
	return out, nil
}

func (c countedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := c.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return countedLayer{Layer: l, pc: c.pc}, nil
}

// Descriptor keeps the wrapped image's own descriptor (its platform, from
// the index it was picked from) for the cache's index.json.
func (c countedImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(c.Image) }

type countedLayer struct {
	v1.Layer
	pc *pullCounter
}

func (l countedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	size, err := l.Layer.Size()
	if err != nil {
		size = 0
	}
	return &countingReader{ReadCloser: rc, pc: l.pc, size: size}, nil
}

// countingReader advances the pull by what is read through it. A stream
// closed unread is a layer the cache already had: it counts as done at
// once.
type countingReader struct {
	io.ReadCloser
	pc     *pullCounter
	size   int64
	read   int64
	closed bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if r.read == 0 && n > 0 {
		r.pc.fetched.Add(1)
	}
	r.read += int64(n)
	r.pc.task.Add(int64(n))
	return n, err
}

func (r *countingReader) Close() error {
	if !r.closed && r.read == 0 {
		r.pc.task.Skip(r.size)
	}
	r.closed = true
	return r.ReadCloser.Close()
}
