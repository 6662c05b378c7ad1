package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keel-os/keel/pkg/bundle"
)

// ResolveDependencies checks the services' depends_on as a whole and
// resolves each short-form condition: service_healthy when the dependency
// has a health check, service_started when it has none. services are
// c.Services, in order, each merged over its image's label (WithLabel),
// so that a label's healthcheck and depends_on count; the result holds
// each service's dependencies, every condition set.
func (c *Config) ResolveDependencies(services []Image) ([]Dependencies, error) {
	out, errs := c.dependencies(services, true)
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// dependencies checks the depends_on of services against the
// configuration: every dependency is another service, a condition of
// service_healthy names a service with a health check, and there is no
// cycle. When final is false, labels are not known yet: a service without
// a health check in the YAML may get one from its label, so only one whose
// YAML turns it off counts as having none, and short forms stay unresolved.
func (c *Config) dependencies(services []Image, final bool) ([]Dependencies, Errors) {
	var errs Errors
	add := func(p Pos, i int, format string, args ...any) {
		errs = append(errs, &Error{Pos: p, Field: fmt.Sprintf("services[%d].depends_on", i), Msg: fmt.Sprintf(format, args...)})
	}
	index := map[string]int{}
	for i, s := range services {
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	others := map[string]string{}
	for _, l := range []struct {
		field  string
		images []Image
	}{{"onshutdown", c.Onshutdown}, {"onboot", c.Onboot}} {
		for _, img := range l.images {
			others[img.Name] = l.field
		}
	}
	type edge struct {
		to  int
		pos Pos
	}
	edges := make([][]edge, len(services))
	out := make([]Dependencies, len(services))
	for i, s := range services {
		if s.DependsOn == nil {
			continue
		}
		out[i] = Dependencies{}
		for _, dep := range s.DependsOn {
			k, ok := index[dep.Service]
			switch {
			case dep.Service == s.Name:
				add(dep.Pos, i, "%q depends on itself", s.Name)
				continue
			case !ok && others[dep.Service] == "onboot":
				add(dep.Pos, i, "%q is an onboot entry, not a service: onboot entries have all run before services start, so there is nothing to wait for", dep.Service)
				continue
			case !ok && others[dep.Service] == "onshutdown":
				add(dep.Pos, i, "%q is an onshutdown entry, not a service: it runs only at shutdown", dep.Service)
				continue
			case !ok:
				add(dep.Pos, i, "unknown service %q%s", dep.Service, closest(dep.Service, index))
				continue
			}
			hc := services[k].Healthcheck
			hasNone := hc.Disabled() || (final && !hc.Enabled())
			switch {
			case dep.Condition == bundle.ConditionHealthy && hasNone:
				add(dep.Pos, i, "condition service_healthy, but %q has no healthcheck", dep.Service)
			case dep.Condition == "" && final && hc.Enabled():
				dep.Condition = bundle.ConditionHealthy
			case dep.Condition == "" && final:
				dep.Condition = bundle.ConditionStarted
			}
			edges[i] = append(edges[i], edge{k, dep.Pos})
			out[i] = append(out[i], dep)
		}
	}
	// Cycles: a depth-first walk from each service in order; an edge back
	// to a service on the walk's path closes a cycle. Each cycle is told
	// once, from its first service in YAML order, at that service's edge.
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(services))
	var path []int
	told := map[string]bool{}
	var walk func(i int)
	walk = func(i int) {
		state[i] = onPath
		path = append(path, i)
		for _, e := range edges[i] {
			switch state[e.to] {
			case unseen:
				walk(e.to)
			case onPath:
				cycle := slices.Clone(path[slices.Index(path, e.to):])
				first := slices.Index(cycle, slices.Min(cycle))
				cycle = append(cycle[first:], cycle[:first]...)
				names := make([]string, 0, len(cycle)+1)
				for _, j := range cycle {
					names = append(names, services[j].Name)
				}
				names = append(names, names[0])
				key := strings.Join(names, " -> ")
				if told[key] {
					continue
				}
				told[key] = true
				from, to := cycle[0], cycle[(1)%len(cycle)]
				var pos Pos
				for _, fe := range edges[from] {
					if fe.to == to {
						pos = fe.pos
						break
					}
				}
				add(pos, from, "dependency cycle: %s", key)
			}
		}
		path = path[:len(path)-1]
		state[i] = done
	}
	for i := range services {
		if state[i] == unseen {
			walk(i)
		}
	}
	return out, errs
}

// closest suggests the service name nearest to an unknown one.
func closest(name string, index map[string]int) string {
	best, dist := "", 3
	for n := range index {
		if d := editDistance(name, n); d < dist || (d == dist && n < best) {
			best, dist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
