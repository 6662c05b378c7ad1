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
		for _, jf := range jsonFields(out.Type()) {
			fs[jf.name] = func(v *yaml.Node) {
				fv, settable := fieldByIndex(out, jf.index)
				if !settable {
					d.errorf(v, field+"."+jf.name, "keel cannot decode this field (in an unexported embedded pointer)")
					ok = false
					return
				}
				if !d.value(v, field+"."+jf.name, fv) {
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

// jsonField is one key of a struct's JSON form and the field that holds it.
type jsonField struct {
	name   string
	index  []int // as reflect.Value.FieldByIndex takes it
	tagged bool
}

// jsonFields lists the keys encoding/json reads and writes for the struct
// type t, so that the YAML takes exactly the keys config.json has. Its
// rules: a field's key is its tag's name, else its Go name; "-" and
// unexported fields are skipped; the fields of an embedded struct with no
// tag name are promoted (runtime-spec's LinuxWeightDevice takes major and
// minor from an embedded LinuxBlockIODevice); a shallower field hides a
// deeper one of the same key, and two at one depth hide each other unless
// only one is tagged.
func jsonFields(t reflect.Type) []jsonField {
	type level struct {
		t     reflect.Type
		index []int
	}
	var all []jsonField
	seen := map[reflect.Type]bool{}
	for next := []level{{t, nil}}; len(next) > 0; {
		current := next
		next = nil
		for _, l := range current {
			if seen[l.t] {
				continue
			}
			seen[l.t] = true
			for i := 0; i < l.t.NumField(); i++ {
				sf := l.t.Field(i)
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if sf.Anonymous {
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				index := append(append([]int{}, l.index...), i)
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, level{ft, index})
					continue
				}
				jf := jsonField{name: name, index: index, tagged: name != ""}
				if name == "" {
					jf.name = sf.Name
				}
				all = append(all, jf)
			}
		}
	}
	// Dominance, by key: the shallowest fields win; of several at that
	// depth, a lone tagged one wins, and otherwise the key is dropped.
	byName := map[string][]jsonField{}
	var order []string
	for _, f := range all {
		if _, ok := byName[f.name]; !ok {
			order = append(order, f.name)
		}
		byName[f.name] = append(byName[f.name], f)
	}
	var out []jsonField
	for _, name := range order {
		fs := byName[name]
		depth := len(fs[0].index) // all is in depth order
		var top, tagged []jsonField
		for _, f := range fs {
			if len(f.index) == depth {
				top = append(top, f)
				if f.tagged {
					tagged = append(tagged, f)
				}
			}
		}
		switch {
		case len(top) == 1:
			out = append(out, top[0])
		case len(tagged) == 1:
			out = append(out, tagged[0])
		}
	}
	return out
}

// fieldByIndex is v's field at index, allocating the embedded pointers on
// the way as encoding/json does; settable is false where it cannot (a nil
// pointer to an unexported embedded struct).
func fieldByIndex(v reflect.Value, index []int) (f reflect.Value, settable bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return reflect.Value{}, false
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, v.CanSet()
}
