package qemu

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Forward is a host port forwarded to the guest (user-mode networking).
type Forward struct {
	// HostIP is the host address listened on; "" is every address.
	HostIP    string
	HostPort  uint16
	GuestPort uint16
	// Proto is "tcp" or "udp".
	Proto string
}

// ParsePublish reads a --publish value: [HOSTIP:]HOST:GUEST[/tcp|/udp],
// as docker run -p takes it. An IPv6 HOSTIP is written in brackets.
func ParsePublish(s string) (Forward, error) {
	bad := func(why string) (Forward, error) {
		return Forward{}, fmt.Errorf("publish %q: %s (want [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp])", s, why)
	}
	f := Forward{Proto: "tcp"}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		f.Proto = spec[i+1:]
		spec = spec[:i]
		if f.Proto != "tcp" && f.Proto != "udp" {
			return bad("protocol " + strconv.Quote(f.Proto))
		}
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return bad("no guest port")
	}
	guest := spec[i+1:]
	spec = spec[:i]
	host := spec
	if j := strings.LastIndex(spec, ":"); j >= 0 {
		f.HostIP, host = strings.Trim(spec[:j], "[]"), spec[j+1:]
		if net.ParseIP(f.HostIP) == nil {
			return bad("host address " + strconv.Quote(f.HostIP))
		}
	}
	for _, p := range []struct {
		s   string
		dst *uint16
	}{{host, &f.HostPort}, {guest, &f.GuestPort}} {
		n, err := strconv.ParseUint(p.s, 10, 16)
		if err != nil || n == 0 {
			return bad("port " + strconv.Quote(p.s))
		}
		*p.dst = uint16(n)
	}
	return f, nil
}

// hostfwd is the forward as QEMU's user netdev takes it.
func (f Forward) hostfwd() string {
	ip := f.HostIP
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("hostfwd=%s:%s:%d-:%d", f.Proto, ip, f.HostPort, f.GuestPort)
}
