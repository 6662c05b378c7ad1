package xattrs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pingCap is the security.capability value `setcap cap_net_raw+ep` gives
// Debian's ping: revision 2 with the effective flag, CAP_NET_RAW (13)
// permitted.
const pingCap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

func TestManifestRoundTrip(t *testing.T) {
	in := []Entry{
		{Path: "containers/onboot/000-x/rootfs/usr/bin/ping", Name: "security.capability", Value: []byte(pingCap)},
		{Path: "usr/bin/ping", Name: "user.note", Value: []byte("line 1\nline \"2\"")},
		{Path: "odd name/\xff\xfe", Name: "trusted.\xffx", Value: nil},
		{Path: "usr/bin/ping", Name: "security.selinux", Value: []byte("system_u:object_r:ping_exec_t:s0\x00")},
	}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "keel-xattrs 1\n") || strings.Count(string(b), "\n") != 5 {
		t.Errorf("want a header and one line per entry:\n%s", b)
	}
	out, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(out), normalize(in)) {
		t.Errorf("round trip:\n got %q\nwant %q", out, in)
	}
	if b2, _ := Encode(out); !bytes.Equal(b, b2) {
		t.Errorf("encoding the parsed manifest gives other bytes")
	}
}

func TestEncodeRefusesWhatCannotBeApplied(t *testing.T) {
	for _, e := range []Entry{
		{Path: "/etc/x", Name: "security.a"},
		{Path: "../x", Name: "security.a"},
		{Path: "a/../../x", Name: "security.a"},
		{Path: "", Name: "security.a"},
		{Path: "x", Name: "capability"},
		{Path: "x", Name: "security."},
		{Path: "x", Name: "user." + strings.Repeat("n", 300)},
		{Path: "x", Name: "user.a", Value: make([]byte, MaxValueLen+1)},
	} {
		if _, err := Encode([]Entry{e}); err == nil {
			t.Errorf("Encode(%q %q) succeeded", e.Path, e.Name)
		}
	}
}

func TestParseErrorsNameTheEntry(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "no final newline"},
		{"keel-xattrs 1", "no final newline"},
		{"keel-xattrs 2\n", `line 1: manifest version "2"`},
		{"hello\n", "line 1: not a keel xattrs manifest"},
		{"keel-xattrs 1\n\"a\" \"user.x\" \"v\"\n\n", "line 3: path: want a double-quoted string"},
		{"keel-xattrs 1\n\"a\" \"user.x\"\n", `line 2 ("a"): want one space before the value`},
		{"keel-xattrs 1\n\"a\"  \"user.x\" \"v\"\n", `line 2 ("a"): name: want a double-quoted string`},
		{"keel-xattrs 1\n\"a\" \"user.x\" \"v\" x\n", `line 2 ("a"): unexpected " x" after the value`},
		{"keel-xattrs 1\n\"a\" \"user.x\" \"v\\q\"\n", `line 2 ("a"): value: bad quoted string`},
		{"keel-xattrs 1\n`a` \"user.x\" \"v\"\n", "line 2: path: want a double-quoted string"},
		{"keel-xattrs 1\n\"../etc/shadow\" \"user.x\" \"v\"\n", `line 2 ("../etc/shadow"): path "../etc/shadow" leaves the root`},
		{"keel-xattrs 1\n\"/etc/shadow\" \"user.x\" \"v\"\n", `line 2 ("/etc/shadow"): path "/etc/shadow" is absolute`},
		{"keel-xattrs 1\n\"a//b\" \"user.x\" \"v\"\n", `path "a//b" is not clean`},
		{"keel-xattrs 1\n\"a\" \"nonamespace\" \"v\"\n", `line 2 ("a"): attribute name "nonamespace" is not namespace.name`},
		{"keel-xattrs 1\n\"a\\x00b\" \"user.x\" \"v\"\n", "holds a NUL byte"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestFileName(t *testing.T) {
	for tree, want := range map[string]string{
		"":                               "%2F",
		"containers/onboot/000-x/rootfs": "%2Fcontainers%2Fonboot%2F000-x%2Frootfs",
		"a%2Fb":                          "%2Fa%252Fb",
	} {
		if got := FileName(tree); got != want {
			t.Errorf("FileName(%q) = %q, want %q", tree, got, want)
		}
	}
	long := strings.Repeat("d/", 150)
	if n := FileName(long); len(n) > 255 || !strings.HasPrefix(n, "long-") || n == FileName(long+"e") {
		t.Errorf("FileName of a long tree: %q", n)
	}
}

// FuzzParse: whatever the bytes, Parse does not panic, every entry it
// accepts is safe to apply, and what it accepts encodes and reads back to
// the same entries.
func FuzzParse(f *testing.F) {
	good, _ := Encode([]Entry{{Path: "bin/ping", Name: "security.capability", Value: []byte(pingCap)}})
	f.Add(good)
	f.Add([]byte("keel-xattrs 1\n"))
	f.Add([]byte("keel-xattrs 1\n\"a\" \"user.x\" \"\\u00e9\\n\"\n"))
	f.Add([]byte("keel-xattrs 1\n\"../a\" \"user.x\" \"v\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Parse(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if err := e.Check(); err != nil {
				t.Fatalf("Parse accepted %q: %v", e.Path, err)
			}
		}
		again, err := Encode(es)
		if err != nil {
			t.Fatalf("Encode of parsed entries: %v", err)
		}
		es2, err := Parse(again)
		if err != nil || !reflect.DeepEqual(normalize(es), normalize(es2)) {
			t.Fatalf("re-encoded manifest reads differently: %v", err)
		}
	})
}

// normalize makes every value a non-nil slice, so that an empty value
// compares equal however it was made.
func normalize(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{e.Path, e.Name, append([]byte{}, e.Value...)}
	}
	return out
}

func TestReadFileNamesTheFileAndEntry(t *testing.T) {
	file := filepath.Join(t.TempDir(), "%2F")
	os.WriteFile(file, []byte("keel-xattrs 1\n\"bin/ping\" \"security.capability\" \"\\x01\"\n\"etc/../../x\" \"security.a\" \"v\"\n"), 0o644)
	_, err := ReadFile(file)
	if want := file + `: line 3 ("etc/../../x"): path "etc/../../x" is not clean`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
