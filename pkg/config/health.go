package config

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keel-os/keel/pkg/bundle"
)

// testUsage is what a healthcheck test may be.
const testUsage = `want ["CMD", prog, args...], ["CMD-SHELL", command], ["TCP", host:port] or ["NONE"]`

// healthcheck decodes a `healthcheck` mapping, as Docker Compose's (with
// keel's TCP test).
func (d *decoder) healthcheck(n *yaml.Node, field string) (*Healthcheck, bool) {
	h := &Healthcheck{}
	before := len(d.errs)
	var disable bool
	var testNode *yaml.Node
	duration := func(key string, out *string, positive bool) func(v *yaml.Node) {
		return func(v *yaml.Node) {
			f := field + "." + key
			if !d.str(v, f, out) {
				return
			}
			dur, err := time.ParseDuration(*out)
			switch {
			case positive && (err != nil || dur <= 0):
				d.errorf(resolve(v), f, "invalid duration %q: want a positive Go duration such as \"30s\" or \"1m\"", *out)
			case err != nil || dur < 0:
				d.errorf(resolve(v), f, "invalid duration %q: want a Go duration such as \"0s\" or \"1m\"", *out)
			}
		}
	}
	if !d.mapping(n, field, fields{
		"test": func(v *yaml.Node) {
			testNode = resolve(v)
			h.Test = d.healthTest(v, field+".test")
		},
		"interval":     duration("interval", &h.Interval, true),
		"timeout":      duration("timeout", &h.Timeout, true),
		"start_period": duration("start_period", &h.StartPeriod, false),
		"retries": func(v *yaml.Node) {
			f := field + ".retries"
			i, ok := d.integer(v, f)
			if !ok {
				return
			}
			if i < 0 || i > 1<<31-1 {
				d.errorf(resolve(v), f, "%d is out of range: want 0 or more", i)
				return
			}
			r := int(i)
			h.Retries = &r
		},
		"disable": func(v *yaml.Node) { d.boolean(v, field+".disable", &disable) },
	}) {
		return nil, false
	}
	if disable {
		if testNode != nil && !h.Disabled() {
			d.errorf(testNode, field+".test", `disable: true cannot be combined with a test other than ["NONE"]`)
		}
		h.Test = []string{HealthNone}
	}
	return h, len(d.errs) == before
}

// healthTest decodes a healthcheck's test: a list whose first word says
// what it is, or a string (Compose's shorthand for CMD-SHELL).
func (d *decoder) healthTest(v *yaml.Node, field string) []string {
	v = resolve(v)
	if v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
		if v.Value == "" {
			d.errorf(v, field, "empty test: %s", testUsage)
			return nil
		}
		return []string{bundle.HealthCmdShell, v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, field, "expected a list or a string, got %s", describe(v))
		return nil
	}
	before := len(d.errs)
	test := d.strings(v, field)
	if len(d.errs) != before {
		return nil
	}
	if len(test) == 0 {
		d.errorf(v, field, "empty test: %s", testUsage)
		return nil
	}
	args := len(test) - 1
	switch test[0] {
	case HealthNone:
		if args != 0 {
			d.errorf(v, field, "NONE takes nothing after it")
			return nil
		}
	case bundle.HealthCmd:
		if args == 0 {
			d.errorf(v, field, `CMD needs a program to run: ["CMD", prog, args...]`)
			return nil
		}
	case bundle.HealthCmdShell:
		if args != 1 {
			d.errorf(v, field, `CMD-SHELL takes exactly one command string, got %d: ["CMD-SHELL", "command"]`, args)
			return nil
		}
	case bundle.HealthTCP:
		if args != 1 {
			d.errorf(v, field, `TCP takes exactly one host:port, got %d: ["TCP", "127.0.0.1:5432"]`, args)
			return nil
		}
		if err := checkHostPort(test[1]); err != nil {
			d.errorf(elem(v, 1), field+"[1]", "%v", err)
			return nil
		}
	default:
		d.errorf(elem(v, 0), field+"[0]", "unknown test type %q: want %s", test[0],
			quoteOr([]string{bundle.HealthCmd, bundle.HealthCmdShell, bundle.HealthTCP, HealthNone}))
		return nil
	}
	return test
}

// checkHostPort checks a TCP test's address: host:port, port 1 to 65535.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var p uint64
		p, err = strconv.ParseUint(port, 10, 16)
		if err == nil && p == 0 {
			err = fmt.Errorf("port 0")
		}
	}
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port with a port from 1 to 65535", s)
	}
	return nil
}

// dependsOn decodes `depends_on`: a list of service names (the short form)
// or a mapping of names to `{condition: ...}` (the long form).
func (d *decoder) dependsOn(n *yaml.Node, field string) (Dependencies, bool) {
	n = resolve(n)
	before := len(d.errs)
	out := Dependencies{}
	switch n.Kind {
	case yaml.SequenceNode:
		seen := map[string]bool{}
		d.list(n, field, func(_ int, e *yaml.Node, f string) {
			var name string
			if !d.str(e, f, &name) {
				return
			}
			if seen[name] {
				d.errorf(e, f, "%q listed twice", name)
				return
			}
			seen[name] = true
			out = append(out, Dependency{Service: name, Pos: d.pos(e)})
		})
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			var name string
			if !d.str(k, field, &name) {
				continue
			}
			if seen[name] {
				d.errorf(k, field, "key %q given twice", name)
				continue
			}
			seen[name] = true
			f := field + "." + name
			// Compose's default condition for the long form.
			dep := Dependency{Service: name, Condition: bundle.ConditionStarted, Pos: d.pos(k)}
			d.mapping(v, f, fields{
				"condition": func(c *yaml.Node) {
					d.oneOf(c, f+".condition", &dep.Condition, bundle.ConditionStarted, bundle.ConditionHealthy)
				},
			})
			out = append(out, dep)
		}
	default:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return out, true // "depends_on:" with nothing after it
		}
		d.errorf(n, field, "expected a list of services or a mapping of services to conditions, got %s", describe(n))
	}
	return out, len(d.errs) == before
}
