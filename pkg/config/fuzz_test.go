package config

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder, the validator and the
// label parser. None may panic; a configuration that decodes and
// validates must give metadata that decodes and validates again.
//
// Byte mutations alone rarely build a YAML document deep enough to reach
// runtime-spec's nested structs, so the seeds also hold one document per
// key path of the schema (schemaSeeds): every key the configuration's
// metadata can write, set empty, under a skeleton that validates. With
// them the seed run alone, without -fuzz, covers every path once.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(full))
	for _, b := range badInputs {
		f.Add([]byte(b.yaml))
	}
	f.Add([]byte(`{"capabilities": ["CAP_SYS_ADMIN"], "binds": ["/a:/a"], "runtime": {"mkdir": ["/x"]}}`))
	f.Add([]byte("kernel: {image: k}\ninit: [i]\nservices: [{name: a, image: b, resources: {blockIO: {weightDevice: [{major: 8, minor: 0, weight: 10}]}}}]\n"))
	// Found by this fuzzer: a weight device's major and minor come from a
	// struct runtime-spec embeds, which the decoder did not take, so the
	// metadata of an entry without them did not decode again. Alone, as
	// found, and in a configuration that validates, so that it reaches the
	// round trip.
	f.Add([]byte("services: [{name: 0, image: 0, resources: {blockIO: {weightDevice: [{}]}}}]"))
	f.Add([]byte("kernel: {image: k}\ninit: [i]\nservices: [{name: 0, image: 0, resources: {blockIO: {weightDevice: [{}]}}}]"))
	f.Add([]byte("a: &a {image: k}\nkernel: *a\n"))
	f.Add([]byte("kernel: {image: k}\ninit: [i]\nservices:\n  - {name: a, image: b, healthcheck: {test: \"true\", retries: 0}, depends_on: {c: {condition: service_healthy}}}\n  - {name: c, image: b, healthcheck: {test: [TCP, \"[::1]:1\"]}, depends_on: [d]}\n  - {name: d, image: b, healthcheck: {disable: true}}\n"))
	for _, seed := range schemaSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseLabel("fuzz", string(data)); err != nil {
			_ = err.Error()
		}
		checkRoundTrip(t, data)
	})
}

// FuzzSchema is FuzzDecode's round trip, driven by the schema rather than
// by bytes: the input is a list of edits, each picking a key path of the
// configuration (as encoding/json writes a Config with every field set)
// and a value for it, applied to a skeleton that validates. The fuzzer
// thus explores which keys meet, and with what, instead of spending its
// time on YAML syntax. A document built only from keys the metadata writes
// must never be refused for an unknown key: that is the class of fault
// the embedded-struct bug was.
func FuzzSchema(f *testing.F) {
	paths := schemaPaths(f)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 1, 1, 0, 2, 2, 0, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		doc := skeleton()
		for n := 0; len(data) >= 3 && n < 16; n++ {
			p := paths[int(binary.LittleEndian.Uint16(data))%len(paths)]
			setPath(doc, p.keys, p.value(data[2]))
			data = data[3:]
		}
		yml, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse("schema.yml", yml); err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Fatalf("a key the metadata writes is refused: %v\n%s", err, yml)
		}
		checkRoundTrip(t, yml)
	})
}

// checkRoundTrip is the fuzzers' property: errors name the file, and a
// configuration that decodes and validates gives metadata that decodes
// and validates again.
func checkRoundTrip(t *testing.T, data []byte) {
	cfg, err := Parse("fuzz.yml", data)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "fuzz.yml") {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	if err := cfg.Validate(); err != nil {
		return
	}
	meta, err := cfg.Metadata("yaml")
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	back, err := Parse("meta.yml", meta)
	if err != nil {
		t.Fatalf("metadata does not decode: %v\n%s", err, meta)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("metadata does not validate: %v\n%s", err, meta)
	}
}

// schemaPath is one key path of the configuration's metadata; an int
// element is a list index. filled is the value encoding/json wrote there
// for a Config with every field set.
type schemaPath struct {
	keys   []any
	filled any
}

// value picks what an edit writes at the path: the filled value, an empty
// one of the same shape (a list of one empty mapping, for a list of
// mappings), or a scalar of another kind.
func (p schemaPath) value(choice byte) any {
	switch choice % 6 {
	case 0:
		return p.filled
	case 1:
		return empty(p.filled)
	case 2:
		return 0
	case 3:
		return ""
	case 4:
		return false
	}
	return nil
}

func empty(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return map[string]any{}
	case []any:
		if len(v) > 0 {
			if _, ok := v[0].(map[string]any); ok {
				return []any{map[string]any{}}
			}
		}
		return []any{}
	case string:
		return ""
	case float64:
		return 0
	case bool:
		return false
	}
	return nil
}

// schemaPaths lists every key path of a Config with every field set, as
// encoding/json writes it, in a stable order. It relies on encoding/json
// and the types' tags, not on the decoder, so a key the decoder does not
// know is still here.
func schemaPaths(tb testing.TB) []schemaPath {
	var cfg Config
	fill(reflect.ValueOf(&cfg).Elem(), 0)
	b, err := json.Marshal(&cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		tb.Fatal(err)
	}
	var out []schemaPath
	var walk func(keys []any, v any)
	walk = func(keys []any, v any) {
		if len(keys) > 0 {
			out = append(out, schemaPath{keys: append([]any(nil), keys...), filled: v})
		}
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(append(keys, k), v[k])
			}
		case []any:
			if len(v) > 0 {
				walk(append(keys, 0), v[0])
			}
		}
	}
	walk(nil, tree)
	if len(out) < 200 {
		tb.Fatalf("the schema has only %d key paths", len(out))
	}
	return out
}

// schemaSeeds is one document per key path: the path set to its empty
// value, under the skeleton.
func schemaSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, p := range schemaPaths(tb) {
		doc := skeleton()
		setPath(doc, p.keys, empty(p.filled))
		b, err := json.Marshal(doc)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// skeleton is the smallest configuration that validates, with one entry
// in each image section, so that a path into any of them reaches the
// round trip.
func skeleton() map[string]any {
	entry := func(name string) []any { return []any{map[string]any{"name": name, "image": "i"}} }
	return map[string]any{
		"kernel":     map[string]any{"image": "k"},
		"init":       []any{"i"},
		"onboot":     entry("b"),
		"onshutdown": entry("d"),
		"services":   entry("s"),
	}
}

// setPath writes v at keys in doc, making the mappings and lists on the
// way; a list element is always the first.
func setPath(doc map[string]any, keys []any, v any) {
	var cur any = doc
	for i, k := range keys {
		last := i == len(keys)-1
		var next any
		switch c := cur.(type) {
		case map[string]any:
			key, ok := k.(string)
			if !ok {
				return
			}
			if last {
				c[key] = v
				return
			}
			next = c[key]
			if !fits(next, keys[i+1]) {
				next = container(keys[i+1])
				c[key] = next
			}
		case []any:
			if len(c) == 0 {
				return
			}
			if last {
				c[0] = v
				return
			}
			next = c[0]
			if !fits(next, keys[i+1]) {
				next = container(keys[i+1])
				c[0] = next
			}
		default:
			return
		}
		cur = next
	}
}

// fits reports whether v can hold the key k: a mapping for a name, a
// list of one or more for an index.
func fits(v, k any) bool {
	switch v := v.(type) {
	case map[string]any:
		_, ok := k.(string)
		return ok
	case []any:
		_, ok := k.(int)
		return ok && len(v) > 0
	}
	return false
}

func container(k any) any {
	if _, ok := k.(int); ok {
		return []any{nil}
	}
	return map[string]any{}
}
