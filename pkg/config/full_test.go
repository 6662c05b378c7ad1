package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const full = `
kernel:
  image: keel/kernel:6.1.0-56
  cmdline: console=ttyS0
  binary: bzImage
  tar: none
  ucode: intel-ucode.cpio
init: [keel/init:0.1.0, keel/runc:1]
trust:
  org: [linuxkit]
volumes:
  - name: vola
    image: alpine:3.20
    readonly: true
    format: oci
    platforms: [linux/amd64]
onboot:
  - name: sysctl
    image: linuxkit/sysctl:1
    net: new
    ipc: new
    uts: new
    pid: host
    userns: /proc/1/ns/user
    capabilities: [none]
    binds.add: ["vola:/vola"]
    readonly: true
    onFailure: halt
    stopGracePeriod: 1m30s
    timeout: 2m
services:
  - name: redis
    image: redis:7
    uid: redis
    gid: 100
    additionalGids: [root, 5]
    capabilities.add: [cap_chown]
    ambient: [NET_BIND_SERVICE]
    mounts:
      - {type: bind, source: /var/lib/redis, destination: /data, options: [rbind, rw]}
      - {source: proc}
    devices:
      - {path: /dev/console, type: c, major: 5, minor: 1, mode: 0666}
      - {path: all, type: b}
    tmpfs: [/tmp]
    sysctl: {net.core.somaxconn: 1024}
    rlimits: ["nofile,1024,unlimited"]
    oomScoreAdj: -100
    noNewPrivileges: true
    rootfsPropagation: rshared
    cgroupsPath: /keel/redis
    resources:
      memory: {limit: 104857600}
      cpu: {shares: 512}
      hugepageLimits: [{pageSize: 2MB, limit: 0}]
    uidMappings: [{containerID: 0, hostID: 100000, size: 65536}]
    annotations: {org.example: yes}
    runtime:
      mkdir: [/var/lib/redis]
      interfaces: [{name: eth1, createInRoot: true}]
      bindNS: {net: /run/netns/redis}
      namespace: apps
    restart: always
    stopGracePeriod: 5s
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 2s
      timeout: 1s
      retries: 5
      start_period: 10s
  - name: web
    image: nginx:1
    healthcheck: {test: [TCP, "127.0.0.1:80"]}
    depends_on:
      redis: {condition: service_healthy}
      worker: {}
  - name: worker
    image: worker:1
    healthcheck: {disable: true}
    depends_on: [redis]
files:
  - path: etc/redis.conf
    contents: "bind 0.0.0.0\n"
    uid: redis
    gid: redis
    mode: "0640"
  - path: etc/keel.yml
    metadata: yaml
  - path: etc/optional
    source: /nonexistent/keel/file
    optional: true
`

func TestParseFull(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kernel; k.Binary != "bzImage" || k.TarName() != "none" || k.UCodeName() != "intel-ucode.cpio" {
		t.Errorf("kernel = %+v", k)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Error() != "t.yml:10:3: trust: ignored: keel does not use Docker Content Trust (pin images by digest instead)" {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
	if v := cfg.Volumes; len(v) != 1 || v[0].Name != "vola" || !v[0].Readonly || v[0].Format != "oci" || v[0].Platforms[0] != "linux/amd64" {
		t.Errorf("volumes = %+v", v)
	}
	ob := cfg.Onboot[0]
	if ob.Net != "new" || ob.Pid != "host" || ob.Userns != "/proc/1/ns/user" || !reflect.DeepEqual(ob.Capabilities, []string{"none"}) ||
		ob.OnFailure != "halt" || ob.StopGracePeriod != "1m30s" || ob.Timeout != "2m" || !*ob.Readonly || ob.BindsAdd[0] != "vola:/vola" {
		t.Errorf("onboot[0] = %+v", ob)
	}
	s := cfg.Services[0]
	if s.UID.Name != "redis" || s.GID.Num != 100 || s.AdditionalGids[0].Name != "root" || s.AdditionalGids[1].Num != 5 {
		t.Errorf("ids = %+v %+v %+v", s.UID, s.GID, s.AdditionalGids)
	}
	if s.CapabilitiesAdd[0] != "CAP_CHOWN" || s.Ambient[0] != "CAP_NET_BIND_SERVICE" {
		t.Errorf("caps = %q %q", s.CapabilitiesAdd, s.Ambient)
	}
	wantMounts := []specs.Mount{
		{Type: "bind", Source: "/var/lib/redis", Destination: "/data", Options: []string{"rbind", "rw"}},
		{Type: "proc", Source: "proc", Destination: "/proc"},
	}
	if !reflect.DeepEqual(s.Mounts, wantMounts) {
		t.Errorf("mounts = %+v", s.Mounts)
	}
	if len(s.Devices) != 2 || s.Devices[0].Mode != 0o666 || s.Devices[1].Path != "all" {
		t.Errorf("devices = %+v", s.Devices)
	}
	if s.Sysctl["net.core.somaxconn"] != "1024" || s.Annotations["org.example"] != "yes" || *s.OOMScoreAdj != -100 ||
		!*s.NoNewPrivileges || s.RootfsPropagation != "rshared" || s.CgroupsPath != "/keel/redis" {
		t.Errorf("service = %+v", s.ImageConfig)
	}
	if r := s.Resources; *r.Memory.Limit != 104857600 || *r.CPU.Shares != 512 || r.HugepageLimits[0].Pagesize != "2MB" {
		t.Errorf("resources = %+v", r)
	}
	if m := s.UIDMappings; len(m) != 1 || m[0].HostID != 100000 || m[0].Size != 65536 {
		t.Errorf("uidMappings = %+v", m)
	}
	if rt := s.Runtime; rt.Mkdir[0] != "/var/lib/redis" || !rt.Interfaces[0].CreateInRoot || rt.BindNS.Net != "/run/netns/redis" || rt.Namespace != "apps" {
		t.Errorf("runtime = %+v", rt)
	}
	if s.Restart != "always" || s.StopGracePeriod != "5s" {
		t.Errorf("restart %q grace %q", s.Restart, s.StopGracePeriod)
	}
	if h := s.Healthcheck; !reflect.DeepEqual(h.Test, []string{"CMD", "redis-cli", "ping"}) || h.Interval != "2s" || h.Timeout != "1s" ||
		*h.Retries != 5 || h.StartPeriod != "10s" {
		t.Errorf("healthcheck = %+v", h)
	}
	web, worker := cfg.Services[1], cfg.Services[2]
	if !reflect.DeepEqual(web.Healthcheck.Test, []string{"TCP", "127.0.0.1:80"}) || !reflect.DeepEqual(worker.Healthcheck.Test, []string{"NONE"}) {
		t.Errorf("healthchecks = %+v, %+v", web.Healthcheck, worker.Healthcheck)
	}
	if d := web.DependsOn; len(d) != 2 || d[0].Service != "redis" || d[0].Condition != "service_healthy" || d[1].Service != "worker" ||
		d[1].Condition != "service_started" || d[0].Pos != (Pos{"t.yml", 75, 7}) {
		t.Errorf("web depends_on = %+v", d)
	}
	if d := worker.DependsOn; len(d) != 1 || d[0].Service != "redis" || d[0].Condition != "" {
		t.Errorf("worker depends_on = %+v", d)
	}
	ids := cfg.IDs()
	if ids["sysctl"] != 100 || ids["redis"] != 101 {
		t.Errorf("ids = %v", ids)
	}
	files, err := cfg.ResolveFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].UID.Num != 101 || files[0].GID.Num != 101 || files[0].Mode != 0o640 || files[1].Metadata != "" {
		t.Fatalf("files = %+v", files)
	}
	// The metadata is the configuration as keel YAML: it parses back to
	// the same thing.
	back, err := Parse("meta.yml", []byte(files[1].Contents))
	if err != nil {
		t.Fatalf("metadata does not parse: %v\n%s", err, files[1].Contents)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	// Both errors count: two failed encodings are equal (empty) too.
	a, err := cfg.Metadata("json")
	if err != nil {
		t.Fatalf("metadata of the configuration: %v", err)
	}
	b, err := back.Metadata("json")
	if err != nil {
		t.Fatalf("metadata of the parsed metadata: %v", err)
	}
	if string(a) != string(b) {
		t.Errorf("metadata round trip differs:\n%s\n---\n%s", a, b)
	}
}

// badInputs is every bad input the decoder and validator are tested with,
// and the exact error each gets.
var badInputs = []struct{ name, yaml, want string }{
	{"broken YAML", "kernel: [\n", "t.yml:1: invalid YAML: did not find expected node content"},
	{"tab indentation", "kernel:\n\timage: k\n", "t.yml:2: invalid YAML: found character that cannot start any token"},
	{"wrong type", "init: keel/init\n", "t.yml:1:7: init: expected a list, got a string"},
	{"unknown key", "services:\n  - name: a\n    image: b\n    capabilites: [all]\n", `t.yml:4:5: services[0]: unknown key "capabilites" (did you mean "capabilities"?)`},
	{"add form misspelt", "services:\n  - name: a\n    image: b\n    bind.add: [/a:/a]\n", `t.yml:4:5: services[0]: unknown key "bind.add" (did you mean "binds.add"?)`},
	{"bad image ref", "onboot:\n  - name: a\n    image: UPPER/Case:1\n", `t.yml:3:12: onboot[0].image: invalid image reference "UPPER/Case:1"`},
	{"invalid name", "services:\n  - name: my service\n    image: b\n", `t.yml:2:11: services[0].name: invalid name "my service": use letters, digits, '_', '.' and '-', starting with a letter or digit`},
	{"bad file mode", "files:\n  - path: x\n    contents: y\n    mode: 0999\n", `t.yml:4:11: files[0].mode: invalid mode "0999": want octal permissions such as "0644"`},
	{"file mode too big", "files:\n  - path: x\n    contents: y\n    mode: \"017777\"\n", `t.yml:4:11: files[0].mode: invalid mode "017777": want octal permissions such as "0644"`},
	{"file without contents", "files:\n  - path: x\n", "t.yml:2:5: files[0]: give one of contents, source, metadata, directory: true or symlink"},
	{"bad metadata", "files:\n  - path: x\n    metadata: toml\n", `t.yml:3:15: files[0].metadata: invalid value "toml": want "yaml" or "json"`},
	{"optional without source", "files:\n  - path: x\n    contents: y\n    optional: true\n", "t.yml:2:5: files[0]: optional applies to a source only"},
	{"rlimit in a flow list", "onboot:\n  - name: a\n    image: b\n    rlimits: [nofile,1,2]\n", "t.yml:4:15: onboot[0].rlimits[0]: invalid rlimit \"nofile\": want name,soft,hard (quote it inside [ ]: [\"nofile,1024,4096\"])\nt.yml:4:22: onboot[0].rlimits[1]: invalid rlimit \"1\": want name,soft,hard (quote it inside [ ]: [\"nofile,1024,4096\"])\nt.yml:4:24: onboot[0].rlimits[2]: invalid rlimit \"2\": want name,soft,hard (quote it inside [ ]: [\"nofile,1024,4096\"])"},
	{"rlimit bad name", "onboot:\n  - name: a\n    image: b\n    rlimits:\n      - nofiles,1,2\n", `t.yml:5:9: onboot[0].rlimits[0]: invalid rlimit "nofiles,1,2": unknown limit "nofiles"`},
	{"rlimit bad value", "onboot:\n  - name: a\n    image: b\n    rlimits: [\"nofile,lots,2\"]\n", `t.yml:4:15: onboot[0].rlimits[0]: invalid rlimit "nofile,lots,2": "lots" is not a number or "unlimited"`},
	{"rlimit soft above hard", "onboot:\n  - name: a\n    image: b\n    rlimits: [\"core,10,1\"]\n", `t.yml:4:15: onboot[0].rlimits[0]: invalid rlimit "core,10,1": the soft limit is above the hard one`},
	{"rlimit two fields", "onboot:\n  - name: a\n    image: b\n    rlimits: [\"nofile,10\"]\n", `t.yml:4:15: onboot[0].rlimits[0]: invalid rlimit "nofile,10": want name,soft,hard`},
	{"capability all with others", "onboot:\n  - name: a\n    image: b\n    capabilities: [all, CAP_CHOWN]\n", `t.yml:4:20: onboot[0].capabilities[0]: "all" must be the only entry of capabilities`},
	{"unknown capability", "onboot:\n  - name: a\n    image: b\n    ambient: [CAP_FLY]\n", `t.yml:4:15: onboot[0].ambient[0]: unknown capability "CAP_FLY"`},
	{"bad namespace", "onboot:\n  - name: a\n    image: b\n    pid: none\n", `t.yml:4:10: onboot[0].pid: invalid value "none": want "host" or "new", or the absolute path of a namespace`},
	{"bad tmpfs", "onboot:\n  - name: a\n    image: b\n    tmpfs: [\":size=1m\"]\n", `t.yml:4:13: onboot[0].tmpfs[0]: invalid tmpfs ":size=1m": want /destination[:options]`},
	{"bind bad source", "onboot:\n  - name: a\n    image: b\n    binds.add: [\"./x:/x\"]\n", `t.yml:4:17: onboot[0].binds.add[0]: invalid bind "./x:/x": the source must be an absolute path or a volume name`},
	{"mount without type", "onboot:\n  - name: a\n    image: b\n    mounts: [{source: /x, destination: /y}]\n", `t.yml:4:14: onboot[0].mounts[0]: the mount at "/y" has no type`},
	{"mount unknown key", "onboot:\n  - name: a\n    image: b\n    mounts: [{dest: /y}]\n", `t.yml:4:15: onboot[0].mounts[0]: unknown key "dest" (known keys: destination, gidMappings, options, source, type, uidMappings)`},
	{"resources wrong type", "onboot:\n  - name: a\n    image: b\n    resources: {memory: {limit: 1G}}\n", "t.yml:4:33: onboot[0].resources.memory.limit: expected a whole number, got a string"},
	{"resources unknown key", "onboot:\n  - name: a\n    image: b\n    resources: {memory: {limt: 1}}\n", `t.yml:4:26: onboot[0].resources.memory: unknown key "limt" (did you mean "limit"?)`},
	{"negative id mapping", "onboot:\n  - name: a\n    image: b\n    uidMappings: [{size: -1}]\n", "t.yml:4:26: onboot[0].uidMappings[0].size: expected a non-negative whole number in range, got -1"},
	{"oomScoreAdj range", "onboot:\n  - name: a\n    image: b\n    oomScoreAdj: 5000\n", "t.yml:4:18: onboot[0].oomScoreAdj: 5000 is out of range: want -1000 to 1000"},
	{"uid negative", "onboot:\n  - name: a\n    image: b\n    uid: -1\n", "t.yml:4:10: onboot[0].uid: invalid id -1: want a number from 0 to 4294967295 or a name"},
	{"uid too big", "onboot:\n  - name: a\n    image: b\n    uid: 99999999999\n", "t.yml:4:10: onboot[0].uid: invalid id 99999999999: want a number from 0 to 4294967295 or a name"},
	{"device without mode", "onboot:\n  - name: a\n    image: b\n    devices: [{path: /dev/kvm, type: c, major: 10, minor: 232}]\n", "t.yml:4:15: onboot[0].devices[0]: mode is required for a device node"},
	{"device bad type", "onboot:\n  - name: a\n    image: b\n    devices: [{path: all, type: x}]\n", `t.yml:4:33: onboot[0].devices[0].type: invalid value "x": want "c", "b", "u", "p" or "a"`},
	{"restart on onboot", "onboot:\n  - name: a\n    image: b\n    restart: always\n", "t.yml:4:14: onboot[0].restart: restart applies to services only"},
	{"bad restart", "services:\n  - name: a\n    image: b\n    restart: sometimes\n", `t.yml:4:14: services[0].restart: invalid value "sometimes": want "always", "on-failure" or "never"`},
	{"bad grace period", "services:\n  - name: a\n    image: b\n    stopGracePeriod: 10\n", `t.yml:4:22: services[0].stopGracePeriod: invalid duration "10": want a Go duration such as "10s" or "1m30s"`},
	{"onFailure on a service", "services:\n  - name: a\n    image: b\n    onFailure: halt\n", "t.yml:4:16: services[0].onFailure: onFailure applies to onboot and onshutdown only (services have restart)"},
	{"timeout on a service", "services:\n  - name: a\n    image: b\n    timeout: 10s\n", "t.yml:4:14: services[0].timeout: timeout applies to onboot and onshutdown only (services have stopGracePeriod)"},
	{"bad timeout", "onboot:\n  - name: a\n    image: b\n    timeout: 10\n", `t.yml:4:14: onboot[0].timeout: invalid duration "10": want a Go duration such as "30s" or "5m"`},
	{"negative timeout", "onshutdown:\n  - name: a\n    image: b\n    timeout: -5s\n", `t.yml:4:14: onshutdown[0].timeout: invalid duration "-5s": want a Go duration such as "30s" or "5m"`},
	{"zero timeout", "onboot:\n  - name: a\n    image: b\n    timeout: 0s\n", `t.yml:4:14: onboot[0].timeout: invalid duration "0s": want a Go duration such as "30s" or "5m"`},
	{"timeout not a string", "onboot:\n  - name: a\n    image: b\n    timeout: [1s]\n", "t.yml:4:14: onboot[0].timeout: expected a string, got a list"},
	{"bad onFailure", "onshutdown:\n  - name: a\n    image: b\n    onFailure: panic\n", `t.yml:4:16: onshutdown[0].onFailure: invalid value "panic": want "continue" or "halt"`},
	{"bad rootfsPropagation", "onboot:\n  - name: a\n    image: b\n    rootfsPropagation: everywhere\n", `t.yml:4:24: onboot[0].rootfsPropagation: invalid value "everywhere": want shared, slave, private or unbindable (or their r- forms)`},
	{"relative cwd", "onboot:\n  - name: a\n    image: b\n    cwd: work\n", `t.yml:4:10: onboot[0].cwd: invalid path "work": want an absolute path`},
	{"sysctl not a map", "onboot:\n  - name: a\n    image: b\n    sysctl: [a=b]\n", "t.yml:4:13: onboot[0].sysctl: expected a mapping, got a list"},
	{"runtime unknown key", "onboot:\n  - name: a\n    image: b\n    runtime: {noRestart: true}\n", `t.yml:4:15: onboot[0].runtime: unknown key "noRestart" (known keys: bindNS, cgroups, interfaces, mkdir, mounts, namespace)`},
	{"bad volume name", "volumes:\n  - name: Vol A\n", `t.yml:2:11: volumes[0].name: invalid volume name "Vol A": use lower-case letters, digits, '_' and '-'`},
	{"readonly not bool", "onboot:\n  - name: a\n    image: b\n    readonly: \"true\"\n", "t.yml:4:15: onboot[0].readonly: expected true or false, got a string"},
	{"kernel tar not string", "kernel:\n  image: k\n  tar: [a]\n", "t.yml:3:8: kernel.tar: expected a string, got a list"},
	{"healthcheck on onboot", "onboot:\n  - name: a\n    image: b\n    healthcheck: {test: [NONE]}\n", "t.yml:4:18: onboot[0].healthcheck: healthcheck applies to services only"},
	{"depends_on on onshutdown", "onshutdown:\n  - name: a\n    image: b\n    depends_on: [x]\n", "t.yml:4:17: onshutdown[0].depends_on: depends_on applies to services only"},
	{"healthcheck empty test", "services:\n  - name: a\n    image: b\n    healthcheck: {test: []}\n", `t.yml:4:25: services[0].healthcheck.test: empty test: want ["CMD", prog, args...], ["CMD-SHELL", command], ["TCP", host:port] or ["NONE"]`},
	{"healthcheck empty string test", "services:\n  - name: a\n    image: b\n    healthcheck: {test: \"\"}\n", `t.yml:4:25: services[0].healthcheck.test: empty test: want ["CMD", prog, args...], ["CMD-SHELL", command], ["TCP", host:port] or ["NONE"]`},
	{"healthcheck unknown test type", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [SHELL, x]}\n", `t.yml:4:26: services[0].healthcheck.test[0]: unknown test type "SHELL": want "CMD", "CMD-SHELL", "TCP" or "NONE"`},
	{"healthcheck CMD alone", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD]}\n", `t.yml:4:25: services[0].healthcheck.test: CMD needs a program to run: ["CMD", prog, args...]`},
	{"healthcheck CMD-SHELL two strings", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD-SHELL, a, b]}\n", `t.yml:4:25: services[0].healthcheck.test: CMD-SHELL takes exactly one command string, got 2: ["CMD-SHELL", "command"]`},
	{"healthcheck CMD-SHELL alone", "services:\n  - name: a\n    image: b\n    healthcheck:\n      test: [CMD-SHELL]\n", `t.yml:5:13: services[0].healthcheck.test: CMD-SHELL takes exactly one command string, got 0: ["CMD-SHELL", "command"]`},
	{"healthcheck TCP alone", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP]}\n", `t.yml:4:25: services[0].healthcheck.test: TCP takes exactly one host:port, got 0: ["TCP", "127.0.0.1:5432"]`},
	{"healthcheck TCP two addresses", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP, \"a:1\", \"b:2\"]}\n", `t.yml:4:25: services[0].healthcheck.test: TCP takes exactly one host:port, got 2: ["TCP", "127.0.0.1:5432"]`},
	{"healthcheck TCP no port", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP, localhost]}\n", `t.yml:4:31: services[0].healthcheck.test[1]: invalid address "localhost": want host:port with a port from 1 to 65535`},
	{"healthcheck TCP port 0", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP, \"localhost:0\"]}\n", `t.yml:4:31: services[0].healthcheck.test[1]: invalid address "localhost:0": want host:port with a port from 1 to 65535`},
	{"healthcheck TCP port too big", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP, \"[::1]:65536\"]}\n", `t.yml:4:31: services[0].healthcheck.test[1]: invalid address "[::1]:65536": want host:port with a port from 1 to 65535`},
	{"healthcheck TCP port name", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [TCP, \"db:postgres\"]}\n", `t.yml:4:31: services[0].healthcheck.test[1]: invalid address "db:postgres": want host:port with a port from 1 to 65535`},
	{"healthcheck NONE with more", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [NONE, x]}\n", "t.yml:4:25: services[0].healthcheck.test: NONE takes nothing after it"},
	{"healthcheck test a mapping", "services:\n  - name: a\n    image: b\n    healthcheck: {test: {a: b}}\n", "t.yml:4:25: services[0].healthcheck.test: expected a list or a string, got a mapping"},
	{"healthcheck disable with test", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], disable: true}\n", `t.yml:4:25: services[0].healthcheck.test: disable: true cannot be combined with a test other than ["NONE"]`},
	{"healthcheck bad interval", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], interval: 10}\n", `t.yml:4:45: services[0].healthcheck.interval: invalid duration "10": want a positive Go duration such as "30s" or "1m"`},
	{"healthcheck zero interval", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], interval: 0s}\n", `t.yml:4:45: services[0].healthcheck.interval: invalid duration "0s": want a positive Go duration such as "30s" or "1m"`},
	{"healthcheck negative timeout", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], timeout: -1s}\n", `t.yml:4:44: services[0].healthcheck.timeout: invalid duration "-1s": want a positive Go duration such as "30s" or "1m"`},
	{"healthcheck zero timeout", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], timeout: 0s}\n", `t.yml:4:44: services[0].healthcheck.timeout: invalid duration "0s": want a positive Go duration such as "30s" or "1m"`},
	{"healthcheck negative start_period", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], start_period: -1s}\n", `t.yml:4:49: services[0].healthcheck.start_period: invalid duration "-1s": want a Go duration such as "0s" or "1m"`},
	{"healthcheck bad start_period", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], start_period: soon}\n", `t.yml:4:49: services[0].healthcheck.start_period: invalid duration "soon": want a Go duration such as "0s" or "1m"`},
	{"healthcheck negative retries", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], retries: -1}\n", "t.yml:4:44: services[0].healthcheck.retries: -1 is out of range: want 0 or more"},
	{"healthcheck retries not a number", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], retries: three}\n", "t.yml:4:44: services[0].healthcheck.retries: expected a whole number, got a string"},
	{"healthcheck unknown key", "services:\n  - name: a\n    image: b\n    healthcheck: {test: [CMD, x], intervall: 1s}\n", `t.yml:4:35: services[0].healthcheck: unknown key "intervall" (did you mean "interval"?)`},
	{"healthcheck not a mapping", "services:\n  - name: a\n    image: b\n    healthcheck: [CMD, x]\n", "t.yml:4:18: services[0].healthcheck: expected a mapping, got a list"},
	{"depends_on bad condition", "services:\n  - name: a\n    image: b\n    depends_on: {db: {condition: service_completed_successfully}}\n", `t.yml:4:34: services[0].depends_on.db.condition: invalid value "service_completed_successfully": want "service_started" or "service_healthy"`},
	{"depends_on unknown key", "services:\n  - name: a\n    image: b\n    depends_on: {db: {conditon: service_healthy}}\n", `t.yml:4:23: services[0].depends_on.db: unknown key "conditon" (did you mean "condition"?)`},
	{"depends_on unrelated key", "services:\n  - name: a\n    image: b\n    depends_on:\n      db: {required: false}\n", `t.yml:5:12: services[0].depends_on.db: unknown key "required" (known keys: condition)`},
	{"depends_on listed twice", "services:\n  - name: a\n    image: b\n    depends_on: [db, db]\n", `t.yml:4:22: services[0].depends_on[1]: "db" listed twice`},
	{"depends_on a string", "services:\n  - name: a\n    image: b\n    depends_on: db\n", "t.yml:4:17: services[0].depends_on: expected a list of services or a mapping of services to conditions, got a string"},
	{"label healthcheck bad", "services:\n  - name: a\n    image: b\n    healthcheck:\n      test: [CMD-SHELL, a, b]\n      retries: -2\n", "t.yml:5:13: services[0].healthcheck.test: CMD-SHELL takes exactly one command string, got 2: [\"CMD-SHELL\", \"command\"]\nt.yml:6:16: services[0].healthcheck.retries: -2 is out of range: want 0 or more"},
	{"billion laughs", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
		"t.yml:1:1: the document expands to more than 1048576 nodes (aliases of aliases?)"},
}

func TestParseBadInputs(t *testing.T) {
	for _, tc := range badInputs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestValidateWhole(t *testing.T) {
	const base = "kernel:\n  image: k\ninit: [i]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"duplicate service", base + "services:\n  - name: a\n    image: b\n  - name: a\n    image: c\n",
			`t.yml:7:11: services[1].name: duplicate name "a" (first used at t.yml:5:11)`},
		{"unknown uid name", base + "services:\n  - name: a\n    image: b\n    uid: redis\n",
			`t.yml:7:10: services[0].uid: unknown id "redis": give a number, "root" or the name of a container`},
		{"unknown file gid", base + "files:\n  - path: x\n    contents: y\n    gid: ghost\n",
			`t.yml:7:10: files[0].gid: unknown id "ghost": give a number, "root" or the name of a container`},
		{"undefined volume", base + "onboot:\n  - name: a\n    image: b\n    binds: [vola:/v]\n",
			"t.yml:5:5: onboot[0]: bind \"vola:/v\" names volume \"vola\", which `volumes` does not define"},
		{"duplicate volume", base + "volumes:\n  - name: v\n  - name: v\n",
			`t.yml:6:5: volumes[1].name: duplicate volume name "v" (first used at t.yml:5:5)`},
		{"unknown dependency", base + "services:\n  - name: db\n    image: b\n  - name: app\n    image: c\n    depends_on: [dbx]\n",
			`t.yml:9:18: services[1].depends_on: unknown service "dbx" (did you mean "db"?)`},
		{"unknown dependency, long form", base + "services:\n  - name: app\n    image: c\n    depends_on:\n      cache: {condition: service_started}\n",
			`t.yml:8:7: services[0].depends_on: unknown service "cache"`},
		{"dependency on onboot", base + "onboot:\n  - name: format\n    image: b\nservices:\n  - name: app\n    image: c\n    depends_on: [format]\n",
			`t.yml:10:18: services[0].depends_on: "format" is an onboot entry, not a service: onboot entries have all run before services start, so there is nothing to wait for`},
		{"dependency on onshutdown", base + "onshutdown:\n  - name: save\n    image: b\nservices:\n  - name: app\n    image: c\n    depends_on: {save: {condition: service_started}}\n",
			`t.yml:10:18: services[0].depends_on: "save" is an onshutdown entry, not a service: it runs only at shutdown`},
		{"self dependency", base + "services:\n  - name: app\n    image: c\n    depends_on: [app]\n",
			`t.yml:7:18: services[0].depends_on: "app" depends on itself`},
		{"cycle", base + "services:\n  - name: x\n    image: i\n  - name: c\n    image: i\n    depends_on: [a]\n  - name: a\n    image: i\n    depends_on: [x, b]\n  - name: b\n    image: i\n    depends_on: {c: {condition: service_started}}\n",
			`t.yml:9:18: services[1].depends_on: dependency cycle: c -> a -> b -> c`},
		{"two cycles", base + "services:\n  - name: a\n    image: i\n    depends_on: [b]\n  - name: b\n    image: i\n    depends_on: [a]\n  - name: c\n    image: i\n    depends_on: [d]\n  - name: d\n    image: i\n    depends_on: [c]\n",
			"t.yml:7:18: services[0].depends_on: dependency cycle: a -> b -> a\nt.yml:13:18: services[2].depends_on: dependency cycle: c -> d -> c"},
		{"healthy without healthcheck", base + "services:\n  - name: db\n    image: b\n    healthcheck: {disable: true}\n  - name: app\n    image: c\n    depends_on: {db: {condition: service_healthy}}\n",
			`t.yml:10:18: services[1].depends_on: condition service_healthy, but "db" has no healthcheck`},
		{"missing source", base + "files:\n  - path: x\n    source: /nonexistent/keel\n",
			"t.yml:5:5: files[0].source: stat /nonexistent/keel: no such file or directory (add `optional: true` to skip a missing source)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("t.yml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// Several files merge as `linuxkit build a.yml b.yml` does: the kernel's
// fields are replaced one by one, every list is appended to.
func TestMerge(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yml")
	b := filepath.Join(dir, "b.yml")
	os.WriteFile(a, []byte("kernel:\n  image: k:1\n  cmdline: console=ttyS0\ninit: [i:1]\nonboot:\n  - {name: one, image: x}\nservices:\n  - {name: s1, image: x}\nfiles:\n  - {path: a, contents: a}\n"), 0o644)
	os.WriteFile(b, []byte("kernel:\n  image: k:2\n  tar: none\ninit: [i:2]\nonboot:\n  - {name: two, image: x}\nservices:\n  - {name: s2, image: x, uid: one}\n"), 0o644)
	cfg, err := Load(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kernel; k.Image != "k:2" || k.Cmdline != "console=ttyS0" || k.TarName() != "none" || k.Pos.File != b {
		t.Errorf("kernel = %+v", k)
	}
	var names []string
	for _, l := range [][]Image{cfg.Onboot, cfg.Services} {
		for _, i := range l {
			names = append(names, i.Name)
		}
	}
	if len(cfg.Init) != 2 || cfg.Init[1].Ref != "i:2" || strings.Join(names, ",") != "one,two,s1,s2" || len(cfg.Files) != 1 || cfg.File != a {
		t.Errorf("merged = %+v", cfg)
	}
	// A later file may set only the kernel fields it changes, as
	// LinuxKit's schema requires none; the merged result needs an image.
	os.WriteFile(b, []byte("kernel:\n  cmdline: console=hvc0\n"), 0o644)
	if cfg, err := Load(a, b); err != nil || cfg.Kernel.Image != "k:1" || cfg.Kernel.Cmdline != "console=hvc0" {
		t.Errorf("kernel cmdline only in the later file: %+v, %v", cfg, err)
	}
	if _, err := Load(b); err == nil || err.Error() != b+":1:1: kernel: a kernel image is required\n"+b+":1:1: init: at least one init image is required" {
		t.Errorf("no kernel image at all: %v", err)
	}
	os.WriteFile(b, []byte("services:\n  - {name: s1, image: y}\n"), 0o644)
	_, err = Load(a, b)
	want := b + `:2:12: services[1].name: duplicate name "s1" (first used at ` + a + ":8:12)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

func TestLoadStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	w.WriteString("kernel:\n  image: k\ninit: [i]\nonboot:\n  - {name: a, image: b, net: bridge}\n")
	w.Close()
	_, err = Load(Stdin)
	want := `<stdin>:5:30: onboot[0].net: invalid value "bridge": want "host", "new" or "none", or the absolute path of a namespace`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	if _, err := Load(Stdin, Stdin); err == nil || err.Error() != "read config: standard input given twice" {
		t.Errorf("stdin twice: %v", err)
	}
}

func TestParseLabel(t *testing.T) {
	l, err := ParseLabel("img", `{"binds": ["/a:/a"], "capabilities": ["CAP_SYS_ADMIN"], "pid": "host", "runtime": {"mkdir": ["/x"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	img := Image{Name: "a", ImageConfig: ImageConfig{BindsAdd: []string{"/b:/b", "/a:/a"}, CapabilitiesAdd: []string{"CAP_NET_ADMIN"}}}
	m := img.WithLabel(l)
	if !reflect.DeepEqual(m.Binds, []string{"/a:/a", "/b:/b"}) || !reflect.DeepEqual(m.Capabilities, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) ||
		m.Pid != "host" || m.Runtime.Mkdir[0] != "/x" || m.BindsAdd != nil {
		t.Errorf("merged = %+v", m.ImageConfig)
	}
	if _, err := ParseLabel("img", `[1, 2]`); err == nil || err.Error() != "img label org.mobyproject.config:1:1: label: expected a mapping, got a list" {
		t.Errorf("list label: %v", err)
	}
}
