package config

import (
	"fmt"
	"strings"

	"github.com/moby/sys/capability"
)

// CapabilityAll grants every capability the kernel knows; CapabilityNone
// grants none.
const (
	CapabilityAll  = "all"
	CapabilityNone = "none"
)

// knownCapabilities are the CAP_ names, upper case.
var knownCapabilities = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = true
	}
	return m
}()

// NormalizeCapability turns "net_admin", "NET_ADMIN" or "cap_net_admin" into
// "CAP_NET_ADMIN", and "all" or "none" (any case) into CapabilityAll or
// CapabilityNone.
func NormalizeCapability(s string) (string, error) {
	if strings.EqualFold(s, CapabilityAll) {
		return CapabilityAll, nil
	}
	if strings.EqualFold(s, CapabilityNone) {
		return CapabilityNone, nil
	}
	c := strings.ToUpper(s)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	if !knownCapabilities[c] {
		return "", fmt.Errorf("unknown capability %q", s)
	}
	return c, nil
}

// AllCapabilities lists every capability name keel knows, sorted by number.
func AllCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
