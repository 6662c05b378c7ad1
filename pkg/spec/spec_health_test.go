package spec

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/config"
)

// runtime.json carries a service's healthcheck with every default written
// out and its dependsOn with each condition resolved; a label's
// healthcheck shows through, NONE clears it, and onboot entries get none.
func TestSpecHealthcheckAndDependsOn(t *testing.T) {
	cfg, err := config.Parse("t.yml", []byte(`kernel: {image: k}
init: [i]
onboot:
  - {name: setup, image: labelled}
services:
  - name: db
    image: plain
    healthcheck: {test: "pg_isready", interval: 2s}
  - name: cache
    image: labelled
  - name: quiet
    image: labelled
    healthcheck: {test: [NONE]}
  - name: app
    image: plain
    depends_on: [db, quiet]
  - name: worker
    image: plain
    depends_on: {cache: {condition: service_healthy}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{
		"plain":    imageConfig(v1.Config{Cmd: []string{"/bin/x"}}),
		"labelled": imageConfig(v1.Config{Cmd: []string{"/bin/x"}, Labels: map[string]string{config.LabelKey: `{"healthcheck": {"test": ["TCP", "127.0.0.1:6379"], "retries": 0}}`}}),
	}
	merged := make([]config.Image, len(cfg.Services))
	for i, s := range cfg.Services {
		if merged[i], err = WithLabel(s, images[s.Image]); err != nil {
			t.Fatal(err)
		}
	}
	deps, err := cfg.ResolveDependencies(merged)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i, s := range cfg.Services {
		s.DependsOn = deps[i]
		_, rt, err := Specs(bundle.Service, s, images[s.Image], nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundle.MarshalRuntime(rt)
		if err != nil {
			t.Fatal(err)
		}
		got[s.Name] = string(b)
	}
	want := map[string]string{
		"db": `"healthcheck": {
    "test": [
      "CMD-SHELL",
      "pg_isready"
    ],
    "interval": "2s",
    "timeout": "30s",
    "startPeriod": "0s",
    "retries": 3
  }`,
		"cache": `"healthcheck": {
    "test": [
      "TCP",
      "127.0.0.1:6379"
    ],
    "interval": "30s",
    "timeout": "30s",
    "startPeriod": "0s",
    "retries": 0
  }`,
		"app": `"dependsOn": [
    {
      "service": "db",
      "condition": "service_healthy"
    },
    {
      "service": "quiet",
      "condition": "service_started"
    }
  ]`,
		"worker": `"dependsOn": [
    {
      "service": "cache",
      "condition": "service_healthy"
    }
  ]`,
	}
	for name, w := range want {
		if !strings.Contains(got[name], w) {
			t.Errorf("%s runtime.json:\n%s\nwant it to hold:\n%s", name, got[name], w)
		}
	}
	for _, name := range []string{"quiet", "app", "worker"} {
		if strings.Contains(got[name], "healthcheck") {
			t.Errorf("%s runtime.json has a healthcheck:\n%s", name, got[name])
		}
	}
	// The label's healthcheck is not an onboot entry's.
	_, rt, err := Specs(bundle.Onboot, cfg.Onboot[0], images["labelled"], nil)
	if err != nil || rt.Healthcheck != nil || rt.DependsOn != nil {
		t.Errorf("onboot runtime = %+v, %v", rt, err)
	}
	// A short form left unresolved, and a healthcheck without a test, are
	// refused rather than written wrong.
	if _, _, err := Specs(bundle.Service, cfg.Services[3], images["plain"], nil); err == nil ||
		err.Error() != `spec for app: depends_on "db": condition not resolved (config.Config.ResolveDependencies resolves it)` {
		t.Errorf("unresolved: %v", err)
	}
	noTest := config.Image{Name: "x", Image: "plain", ImageConfig: config.ImageConfig{Healthcheck: &config.Healthcheck{Interval: "1s"}}}
	if _, _, err := Specs(bundle.Service, noTest, images["plain"], nil); err == nil ||
		err.Error() != "spec for x: healthcheck has no test, and the image's label gives none" {
		t.Errorf("no test: %v", err)
	}
}
