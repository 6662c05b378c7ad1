package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// RegistryTimeouts bound each request to a registry, so that one that
// accepts a connection and then stalls fails the build instead of hanging
// it. A zero field takes its DefaultRegistryTimeouts value.
type RegistryTimeouts struct {
	// Connect bounds making the connection: TCP and TLS handshakes.
	Connect time.Duration
	// ResponseHeader bounds the wait from sending a request to the
	// response's headers.
	ResponseHeader time.Duration
	// Idle bounds each wait for more of a response body: a download may
	// take as long as it needs while bytes keep coming.
	Idle time.Duration
}

// DefaultRegistryTimeouts are generous: a slow registry or link is not an
// error, only one that has gone silent.
var DefaultRegistryTimeouts = RegistryTimeouts{
	Connect:        30 * time.Second,
	ResponseHeader: 60 * time.Second,
	Idle:           60 * time.Second,
}

func (t RegistryTimeouts) withDefaults() RegistryTimeouts {
	d := DefaultRegistryTimeouts
	if t.Connect > 0 {
		d.Connect = t.Connect
	}
	if t.ResponseHeader > 0 {
		d.ResponseHeader = t.ResponseHeader
	}
	if t.Idle > 0 {
		d.Idle = t.Idle
	}
	return d
}

// TimeoutError says which of the RegistryTimeouts fired, talking to which
// host (a registry, or the blob store it redirected to).
type TimeoutError struct {
	// Which is "connect", "response header" or "idle".
	Which string
	Host  string
	After time.Duration
	// Err is what the transport returned, if anything.
	Err error
}

func (e *TimeoutError) Error() string {
	var what string
	switch e.Which {
	case "connect":
		what = fmt.Sprintf("could not connect within %v", e.After)
	case "response header":
		what = fmt.Sprintf("no response headers within %v", e.After)
	default:
		what = fmt.Sprintf("no data for %v while reading the response", e.After)
	}
	return fmt.Sprintf("registry %s: %s timeout: %s", e.Host, e.Which, what)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// timeoutTransport applies RegistryTimeouts to every request. The
// response-header and idle timeouts cancel the request's context with a
// TimeoutError as the cause, which then replaces the transport's plain
// "context canceled".
type timeoutTransport struct {
	base     http.RoundTripper
	timeouts RegistryTimeouts
}

// newTimeoutTransport is http.DefaultTransport's configuration (proxy from
// the environment, HTTP/2, keep-alives) with t's timeouts.
func newTimeoutTransport(t RegistryTimeouts) *timeoutTransport {
	t = t.withDefaults()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = t.Connect
	return &timeoutTransport{base: base, timeouts: t}
}

func (tt *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	ctx, cancel := context.WithCancelCause(req.Context())
	after := tt.timeouts.ResponseHeader
	timer := time.AfterFunc(after, func() {
		cancel(&TimeoutError{Which: "response header", Host: host, After: after})
	})
	resp, err := tt.base.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		var terr *TimeoutError
		if errors.As(context.Cause(ctx), &terr) {
			err = &TimeoutError{Which: terr.Which, Host: host, After: after, Err: err}
		} else if nerr, ok := errors.AsType[*net.OpError](err); ok && nerr.Op == "dial" && nerr.Timeout() {
			err = &TimeoutError{Which: "connect", Host: host, After: tt.timeouts.Connect, Err: err}
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, ctx, cancel, host, tt.timeouts.Idle)
	return resp, nil
}

// idleBody fails a read that waits longer than idle for data. The clock
// runs only inside Read: a reader that is slow to ask for more (writing
// to a slow disk) is not the registry's fault.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
}

func newIdleBody(rc io.ReadCloser, ctx context.Context, cancel context.CancelCauseFunc, host string, idle time.Duration) *idleBody {
	b := &idleBody{rc: rc, ctx: ctx, cancel: cancel, idle: idle}
	b.timer = time.AfterFunc(idle, func() {
		cancel(&TimeoutError{Which: "idle", Host: host, After: idle})
	})
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		var terr *TimeoutError
		if errors.As(context.Cause(b.ctx), &terr) {
			return n, &TimeoutError{Which: terr.Which, Host: terr.Host, After: terr.After, Err: err}
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil) // frees the context; the body is done with
	return err
}
