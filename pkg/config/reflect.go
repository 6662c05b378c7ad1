package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// value decodes n into the Go value out points to, for the nested OCI types
// the YAML takes as they are (resources, mounts, id mappings): a struct is
// a mapping whose keys are its JSON names, and every key and type is
// checked with the position of the offending node.
func (d *decoder) value(n *yaml.Node, field string, out reflect.Value) bool {
	n = resolve(n)
	switch out.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return true
		}
		v := reflect.New(out.Type().Elem())
		if !d.value(n, field, v.Elem()) {
			return false
		}
		out.Set(v)
		return true
	case reflect.Struct:
		fs := fields{}
		ok := true
		t := out.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" || !sf.IsExported() {
				continue
			}
			fv := out.Field(i)
			fs[name] = func(v *yaml.Node) {
				if !d.value(v, field+"."+name, fv) {
					ok = false
				}
			}
		}
		before := len(d.errs)
		return d.mapping(n, field, fs) && ok && len(d.errs) == before
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, field, "expected a list, got %s", describe(n))
			return false
		}
		s := reflect.MakeSlice(out.Type(), len(n.Content), len(n.Content))
		ok := true
		for i, e := range n.Content {
			if !d.value(e, fmt.Sprintf("%s[%d]", field, i), s.Index(i)) {
				ok = false
			}
		}
		out.Set(s)
		return ok
	case reflect.String:
		var s string
		if !d.str(n, field, &s) {
			return false
		}
		out.SetString(s)
		return true
	case reflect.Bool:
		var b bool
		if !d.boolean(n, field, &b) {
			return false
		}
		out.SetBool(b)
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := d.integer(n, field)
		if !ok {
			return false
		}
		if out.OverflowInt(i) {
			d.errorf(n, field, "%d is out of range", i)
			return false
		}
		out.SetInt(i)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.errorf(n, field, "expected a number, got %s", describe(n))
			return false
		}
		u, err := strconv.ParseUint(n.Value, 0, 64)
		if err != nil || out.OverflowUint(u) {
			d.errorf(n, field, "expected a non-negative whole number in range, got %s", n.Value)
			return false
		}
		out.SetUint(u)
		return true
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			d.errorf(n, field, "expected a number, got %s", describe(n))
			return false
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, field, "expected a number, got %s", n.Value)
			return false
		}
		out.SetFloat(f)
		return true
	case reflect.Map:
		if out.Type().Key().Kind() != reflect.String {
			break
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, field, "expected a mapping, got %s", describe(n))
			return false
		}
		m := reflect.MakeMap(out.Type())
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			var key string
			if !d.str(k, field, &key) {
				ok = false
				continue
			}
			if m.MapIndex(reflect.ValueOf(key)).IsValid() {
				d.errorf(k, field, "key %q given twice", key)
				ok = false
				continue
			}
			v := reflect.New(out.Type().Elem()).Elem()
			if !d.value(n.Content[i+1], field+"."+key, v) {
				ok = false
				continue
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(out.Type().Key()), v)
		}
		out.Set(m)
		return ok
	}
	d.errorf(n, field, "keel cannot decode this field (%s)", out.Type())
	return false
}

// integer decodes a whole number (in any base YAML allows).
func (d *decoder) integer(n *yaml.Node, field string) (int64, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(n, field, "expected a whole number, got %s", describe(n))
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		d.errorf(n, field, "expected a whole number in range, got %s", n.Value)
		return 0, false
	}
	return i, true
}
