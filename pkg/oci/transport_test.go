package oci

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// shortTimeouts make a stalled registry fail the test in well under a
// second; the assertions are on the error, never on a duration.
var shortTimeouts = RegistryTimeouts{Connect: 2 * time.Second, ResponseHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond}

// stallServer serves handler on 127.0.0.1; the handlers below block until
// the client gives up, or the test ends.
func stallServer(t *testing.T, handler http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A registry that accepts the connection and never answers fails the
// pull with the response-header timeout, naming the image and registry.
func TestPullTimesOutWaitingForHeaders(t *testing.T) {
	stop := make(chan struct{})
	host := stallServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop) })
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Cache: c, Timeouts: shortTimeouts}
	ref := host + "/stalls/headers:1"
	err = r.Pull(context.Background(), ref)
	if err == nil {
		t.Fatal("pull from a silent registry succeeded")
	}
	var terr *TimeoutError
	if !errors.As(err, &terr) || terr.Which != "response header" {
		t.Fatalf("error is not a response-header timeout: %v", err)
	}
	t.Log(err)
	for _, want := range []string{"pull " + ref, "registry " + host + ": response header timeout: no response headers within 300ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A registry that sends a layer's headers and part of its body, then
// stalls, fails the pull with the idle timeout; nothing is named in the
// cache.
func TestPullTimesOutMidBlob(t *testing.T) {
	img, err := random.Image(64<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	host := stallServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+digest.String()) {
			reg.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, size/2))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop) })
	ref := host + "/stalls/blob:1"
	push(t, ref, img)

	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Only the blob stalls: the ping, manifest and config are answered
	// at once, but on a loaded machine perhaps not within shortTimeouts'
	// 300ms, which would fail them with a header timeout first.
	r := &Resolver{Cache: c, Timeouts: RegistryTimeouts{Connect: 2 * time.Second, ResponseHeader: time.Minute, Idle: time.Second}}
	err = r.Pull(context.Background(), ref)
	if err == nil {
		t.Fatal("pull of a stalling blob succeeded")
	}
	var terr *TimeoutError
	if !errors.As(err, &terr) || terr.Which != "idle" {
		t.Fatalf("error is not an idle timeout: %v", err)
	}
	t.Log(err)
	for _, want := range []string{"pull " + ref, "registry " + host + ": idle timeout: no data for 1s while reading the response"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	l, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 0 {
		t.Errorf("cached after a failed pull: %v", l)
	}
}
