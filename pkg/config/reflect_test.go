package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaTypes walks the configuration's Go types and returns every struct
// type the decoder takes as it is, by reflection (value): the runtime-spec
// and bundle types, and Runtime. The others have decoders of their own.
func schemaTypes() []reflect.Type {
	var out []reflect.Type
	seen := map[reflect.Type]bool{}
	self := reflect.TypeOf(Config{}).PkgPath()
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[t] {
			return
		}
		seen[t] = true
		if t.PkgPath() != self || t == reflect.TypeOf(Runtime{}) {
			out = append(out, t)
		}
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
	return out
}

// fill sets every field of v, as deep as it goes, to a value that is not
// zero, so that encoding/json writes every key, embedded ones included.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 8 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.CanSet() {
				fill(f, depth+1)
			} else if v.Type().Field(i).Anonymous && f.Kind() == reflect.Struct {
				// An unexported embedded struct: its exported fields are
				// promoted, and settable through it.
				fill(f, depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), e)
		v.Set(m)
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

// Every key encoding/json writes for a schema type, the decoder takes
// back, with the same value: the YAML takes exactly config.json's keys. It
// walks every type, so an embedded struct anywhere (runtime-spec's
// LinuxWeightDevice and LinuxThrottleDevice embed LinuxBlockIODevice for
// major and minor) cannot be missed.
func TestDecodeEverySchemaType(t *testing.T) {
	types := schemaTypes()
	if len(types) < 10 {
		t.Fatalf("the walk found only %d types: %v", len(types), types)
	}
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			in := reflect.New(typ)
			fill(in.Elem(), 0)
			want, err := json.Marshal(in.Interface())
			if err != nil {
				t.Fatal(err)
			}
			var n yaml.Node
			if err := yaml.Unmarshal(want, &n); err != nil {
				t.Fatal(err)
			}
			d := &decoder{file: "t.json"}
			out := reflect.New(typ)
			if !d.value(n.Content[0], "x", out.Elem()) {
				t.Fatalf("%s does not decode:\n%v", want, d.errs)
			}
			got, err := json.Marshal(out.Interface())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("decoded:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// The fuzzer's find: a weight device with no major and minor, which the
// metadata then wrote with them, and which did not decode again.
func TestDecodeBlockIODevices(t *testing.T) {
	const yml = `services:
  - name: a
    image: b
    resources:
      blockIO:
        weightDevice: [{major: 8, minor: 16, weight: 10, leafWeight: 5}]
        throttleReadBpsDevice: [{major: 8, minor: 0, rate: 1048576}]
        throttleWriteIOPSDevice: [{major: 253, minor: 1, rate: 100}]
`
	cfg, err := Parse("t.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Services[0].Resources.BlockIO
	if w := b.WeightDevice[0]; w.Major != 8 || w.Minor != 16 || *w.Weight != 10 || *w.LeafWeight != 5 {
		t.Errorf("weightDevice = %+v", w)
	}
	if r := b.ThrottleReadBpsDevice[0]; r.Major != 8 || r.Minor != 0 || r.Rate != 1048576 {
		t.Errorf("throttleReadBpsDevice = %+v", r)
	}
	if r := b.ThrottleWriteIOPSDevice[0]; r.Major != 253 || r.Minor != 1 || r.Rate != 100 {
		t.Errorf("throttleWriteIOPSDevice = %+v", r)
	}
	_, err = Parse("t.yml", []byte(strings.Replace(yml, "major: 8, minor: 16", "majr: 8, minor: 16", 1)))
	want := `t.yml:6:25: services[0].resources.blockIO.weightDevice[0]: unknown key "majr" (did you mean "major"?)`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want it to start %s", err, want)
	}
}

// jsonFields follows encoding/json's rules for embedded structs, checked
// against encoding/json itself on types that exercise each rule.
type (
	embedA struct {
		Dup    int // conflicts with embedB's at the same depth: dropped
		Deep   int `json:"shadowed"`
		Inner  int `json:"inner"`
		hidden int
	}
	embedB struct {
		Dup int
	}
	EmbedP struct {
		P int `json:"p"`
	}
	embedTagged struct {
		T int `json:"t"`
	}
	jsonRules struct {
		embedA
		embedB
		*EmbedP
		Tagged  embedTagged `json:"tagged"`
		Shallow int         `json:"shadowed"`
		Untag   int
		Skip    int `json:"-"`
	}
)

func TestJSONFieldsRules(t *testing.T) {
	var in jsonRules
	in.Inner, in.Deep, in.embedA.Dup, in.embedB.Dup = 1, 2, 3, 4
	in.EmbedP = &EmbedP{P: 5}
	in.Tagged.T, in.Shallow, in.Untag, in.Skip = 6, 7, 8, 9
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(want, &n); err != nil {
		t.Fatal(err)
	}
	d := &decoder{file: "t.json"}
	var out jsonRules
	if !d.value(n.Content[0], "x", reflect.ValueOf(&out).Elem()) {
		t.Fatalf("%s does not decode: %v", want, d.errs)
	}
	got, _ := json.Marshal(out)
	if string(got) != string(want) {
		t.Errorf("decoded %s, want %s", got, want)
	}
	// Keys encoding/json does not have, the decoder refuses.
	for _, key := range []string{"Dup", "Skip", "hidden", "embedA", "T"} {
		if err := yaml.Unmarshal([]byte("{"+key+": 1}"), &n); err != nil {
			t.Fatal(err)
		}
		d := &decoder{file: "t.json"}
		if d.value(n.Content[0], "x", reflect.ValueOf(&out).Elem()) {
			t.Errorf("key %q decoded", key)
		}
	}
}
