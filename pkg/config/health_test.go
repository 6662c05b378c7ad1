package config

import (
	"reflect"
	"testing"
)

// healthOf parses one service entry's healthcheck, given as YAML lines
// under `healthcheck:`.
func healthOf(t *testing.T, hc string) *Healthcheck {
	t.Helper()
	cfg, err := Parse("t.yml", []byte("services:\n  - name: a\n    image: b\n    healthcheck:\n"+hc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Services[0].Healthcheck
}

func TestHealthcheckForms(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"CMD", "      test: [CMD, pg_isready, -q]\n", []string{"CMD", "pg_isready", "-q"}},
		{"CMD-SHELL", "      test: [CMD-SHELL, \"test -e /run/db.ready\"]\n", []string{"CMD-SHELL", "test -e /run/db.ready"}},
		{"string is CMD-SHELL", "      test: test -e /run/db.ready\n", []string{"CMD-SHELL", "test -e /run/db.ready"}},
		{"TCP", "      test: [TCP, \"127.0.0.1:5432\"]\n", []string{"TCP", "127.0.0.1:5432"}},
		{"TCP IPv6", "      test: [TCP, \"[::1]:65535\"]\n", []string{"TCP", "[::1]:65535"}},
		{"NONE", "      test: [NONE]\n", []string{"NONE"}},
		{"disable", "      disable: true\n", []string{"NONE"}},
		{"disable with NONE", "      disable: true\n      test: [NONE]\n", []string{"NONE"}},
		{"disable false", "      disable: false\n      test: [CMD, x]\n", []string{"CMD", "x"}},
		{"no test (the label's)", "      interval: 5s\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h := healthOf(t, tc.yaml); !reflect.DeepEqual(h.Test, tc.want) {
				t.Errorf("test = %q, want %q", h.Test, tc.want)
			}
		})
	}
	h := healthOf(t, "      test: [CMD, x]\n")
	if h.Interval != "" || h.Timeout != "" || h.StartPeriod != "" || h.Retries != nil || !h.Enabled() || h.Disabled() {
		t.Errorf("unset fields = %+v (defaults are filled in by the spec, so a label shows through)", h)
	}
	if h := healthOf(t, "      test: [CMD, x]\n      retries: 0\n      start_period: 0s\n"); *h.Retries != 0 || h.StartPeriod != "0s" {
		t.Errorf("zero retries and start_period = %+v", h)
	}
}

func TestDependsOnForms(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(`services:
  - {name: db, image: b}
  - name: app
    image: c
    depends_on: [db]
  - name: worker
    image: c
    depends_on:
      db: {condition: service_healthy}
      app: {condition: service_started}
  - name: empty
    image: c
    depends_on: []
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Dependencies{}
	for _, s := range cfg.Services {
		got[s.Name] = s.DependsOn
	}
	want := map[string]Dependencies{
		"db":     nil,
		"app":    {{Service: "db", Pos: Pos{"t.yml", 5, 18}}},
		"worker": {{Service: "db", Condition: "service_healthy", Pos: Pos{"t.yml", 9, 7}}, {Service: "app", Condition: "service_started", Pos: Pos{"t.yml", 10, 7}}},
		"empty":  {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("depends_on =\n%+v\nwant\n%+v", got, want)
	}
}

// A label's healthcheck is the default; the YAML's fields replace the
// label's one by one, and a test of NONE (or disable: true) turns it off.
func TestHealthcheckLabel(t *testing.T) {
	label, err := ParseLabel("img", `{"healthcheck": {"test": ["CMD", "probe"], "interval": "5s", "retries": 7}}`)
	if err != nil {
		t.Fatal(err)
	}
	if h := label.Healthcheck; !reflect.DeepEqual(h.Test, []string{"CMD", "probe"}) || h.Interval != "5s" || *h.Retries != 7 {
		t.Fatalf("label healthcheck = %+v", h)
	}
	three := 3
	for _, tc := range []struct {
		name  string
		entry *Healthcheck
		want  *Healthcheck
	}{
		{"label only", nil, label.Healthcheck},
		{"YAML over the label, field by field", &Healthcheck{Interval: "1s", Retries: &three},
			&Healthcheck{Test: []string{"CMD", "probe"}, Interval: "1s", Retries: &three}},
		{"YAML test", &Healthcheck{Test: []string{"TCP", "127.0.0.1:1"}},
			&Healthcheck{Test: []string{"TCP", "127.0.0.1:1"}, Interval: "5s", Retries: label.Healthcheck.Retries}},
		{"NONE clears it", &Healthcheck{Test: []string{"NONE"}, Interval: "1s"}, &Healthcheck{Test: []string{"NONE"}, Interval: "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := Image{Name: "a", ImageConfig: ImageConfig{Healthcheck: tc.entry}}
			if got := img.WithLabel(label).Healthcheck; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("merged = %+v, want %+v", got, tc.want)
			}
		})
	}
	if (Image{}).WithLabel(ImageConfig{}).Healthcheck != nil {
		t.Error("no healthcheck anywhere gives one")
	}
	// A label's depends_on too, replaced (not added to) by the YAML's.
	label, err = ParseLabel("img", "depends_on: [db]\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := (Image{}).WithLabel(label).DependsOn; len(d) != 1 || d[0].Service != "db" || d[0].Pos.File != "img label org.mobyproject.config" {
		t.Errorf("label depends_on = %+v", d)
	}
	if d := (Image{ImageConfig: ImageConfig{DependsOn: Dependencies{}}}).WithLabel(label).DependsOn; d == nil || len(d) != 0 {
		t.Errorf("depends_on: [] over a label's = %+v", d)
	}
	if _, err := ParseLabel("img", `{"healthcheck": {"test": ["CMD"]}}`); err == nil ||
		err.Error() != `img label org.mobyproject.config:1:26: label.healthcheck.test: CMD needs a program to run: ["CMD", prog, args...]` {
		t.Errorf("bad label healthcheck: %v", err)
	}
}

// At build time, with the labels merged, a short form waits for healthy
// when the dependency has a health check (its own or its label's), for
// started when it has none; a long form service_healthy on a service
// without one is an error; a label's depends_on is checked like the
// YAML's.
func TestResolveDependencies(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(`kernel: {image: k}
init: [i]
services:
  - {name: db, image: postgres}
  - {name: cache, image: redis}
  - {name: off, image: redis, healthcheck: {test: [NONE]}}
  - name: app
    image: app
    depends_on: [db, cache, off]
  - name: worker
    image: app
    depends_on: {cache: {condition: service_healthy}}
  - {name: lonely, image: app}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Without the labels, nothing is known to lack a health check (but
	// off, which turns its own off): Validate passes.
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{
		"postgres": `{"healthcheck": {"test": ["CMD-SHELL", "pg_isready"]}}`,
		"redis":    `{"healthcheck": {"test": ["TCP", "127.0.0.1:6379"]}}`,
	}
	merge := func(labels map[string]string) []Image {
		var out []Image
		for _, s := range cfg.Services {
			l, err := ParseLabel(s.Image, labels[s.Image])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s.WithLabel(l))
		}
		return out
	}
	deps, err := cfg.ResolveDependencies(merge(labels))
	if err != nil {
		t.Fatal(err)
	}
	conds := func(ds Dependencies) map[string]string {
		m := map[string]string{}
		for _, d := range ds {
			m[d.Service] = d.Condition
		}
		return m
	}
	if got := conds(deps[3]); !reflect.DeepEqual(got, map[string]string{"db": "service_healthy", "cache": "service_healthy", "off": "service_started"}) {
		t.Errorf("app = %v", got)
	}
	if got := conds(deps[4]); !reflect.DeepEqual(got, map[string]string{"cache": "service_healthy"}) {
		t.Errorf("worker = %v", got)
	}
	if deps[0] != nil || deps[5] != nil {
		t.Errorf("no depends_on = %+v, %+v", deps[0], deps[5])
	}
	// Without the labels' health checks the short form waits for started,
	// and the long form's service_healthy is refused.
	deps, err = cfg.ResolveDependencies(merge(nil))
	want := `t.yml:12:18: services[4].depends_on: condition service_healthy, but "cache" has no healthcheck`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	// A label's depends_on, with the label's position: it shows through
	// on lonely only (app and worker give their own).
	labels["app"] = `{"depends_on": ["lonely", "ghost"]}`
	_, err = cfg.ResolveDependencies(merge(labels))
	want = "app label org.mobyproject.config:1:17: services[5].depends_on: \"lonely\" depends on itself\n" +
		"app label org.mobyproject.config:1:27: services[5].depends_on: unknown service \"ghost\""
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}
