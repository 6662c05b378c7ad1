package bootlog

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Source is the name keel's own lines carry: "[ts] keel: message".
const Source = "keel"

// Handler is an slog.Handler printing "[ts] keel: message key=value ...".
// Info and debug lines carry no level; warnings and errors carry a marker
// after the source, "keel: WARN message" and "keel: ERROR message", so
// that a person can spot them and a boot test can assert that a clean boot
// logged no error. Values with spaces or quotes are quoted.
type Handler struct {
	c      *Console
	level  slog.Leveler
	attrs  []byte // preformatted " key=value" from WithAttrs
	prefix string // group prefix for keys, "g1.g2."
}

// Handler returns an slog.Handler printing on c the records at or above
// level.
func (c *Console) Handler(level slog.Leveler) *Handler {
	return &Handler{c: c, level: level}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	h.c.write(func(b []byte) []byte {
		b = append(b, Source...)
		b = append(b, ": "...)
		b = append(b, levelMarker(r.Level)...)
		b = append(b, r.Message...)
		b = append(b, h.attrs...)
		r.Attrs(func(a slog.Attr) bool {
			b = appendAttr(b, h.prefix, a)
			return true
		})
		return b
	})
	return nil
}

// Level markers, as they appear after "keel: ".
const (
	WarnMarker  = "WARN "
	ErrorMarker = "ERROR "
)

// levelMarker is the marker a record at l carries: none below warn, and
// levels in between (slog allows any integer) round down.
func levelMarker(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return ErrorMarker
	case l >= slog.LevelWarn:
		return WarnMarker
	}
	return ""
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	return appendValue(b, a.Value)
}

func appendValue(b []byte, v slog.Value) []byte {
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindDuration:
		s = v.Duration().String()
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	default:
		s = v.String()
	}
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	return strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == '"' || r == '=' || r == 0x7f
	})
}
