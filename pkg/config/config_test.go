package config

import (
	"reflect"
	"strings"
	"testing"
)

const good = `
kernel:
  image: keel/kernel:6.1.0-56
  cmdline: console=ttyS0
init:
  - keel/init:0.1.0
onboot:
  - name: hello
    image: keel/busybox:1.35
    command: [echo, hello, 10]
    env: [A=b]
    binds: ["/var:/var:ro"]
    capabilities: [net_admin, CAP_SYS_ADMIN]
    net: host
    pid: /run/netns/x/
services:
  - name: getty
    image: 127.0.0.1:5000/getty@sha256:0000000000000000000000000000000000000000000000000000000000000000
files:
  - path: /etc/hostname
    contents: keel
  - path: var/empty
    directory: true
    mode: "0700"
  - path: bin/sh
    symlink: busybox
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Kernel.Image != "keel/kernel:6.1.0-56" || cfg.Kernel.Cmdline != "console=ttyS0" {
		t.Errorf("kernel = %+v", cfg.Kernel)
	}
	if len(cfg.Init) != 1 || cfg.Init[0].Ref != "keel/init:0.1.0" || cfg.Init[0].Pos.Line != 6 {
		t.Errorf("init = %+v", cfg.Init)
	}
	ob := cfg.Onboot[0]
	want := Image{
		Name: "hello", Image: "keel/busybox:1.35",
		ImageConfig: ImageConfig{
			Command:      []string{"echo", "hello", "10"},
			Env:          []string{"A=b"},
			Binds:        []string{"/var:/var:ro"},
			Capabilities: []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"},
			Net:          "host", Pid: "/run/netns/x",
		},
		Pos:     Pos{"t.yml", 8, 5},
		NamePos: Pos{"t.yml", 8, 11},
	}
	if !reflect.DeepEqual(ob, want) {
		t.Errorf("onboot[0] =\n%+v\nwant\n%+v", ob, want)
	}
	if cfg.Services[0].Command != nil {
		t.Errorf("service command = %#v, want nil (not given)", cfg.Services[0].Command)
	}
	wantFiles := []File{
		{Path: "etc/hostname", Kind: RegularFile, Contents: "keel", Mode: 0o600, Pos: Pos{"t.yml", 20, 5}},
		{Path: "var/empty", Kind: Directory, Mode: 0o700, Pos: Pos{"t.yml", 22, 5}},
		{Path: "bin/sh", Kind: Symlink, Target: "busybox", Mode: 0o777, Pos: Pos{"t.yml", 25, 5}},
	}
	if !reflect.DeepEqual(cfg.Files, wantFiles) {
		t.Errorf("files =\n%+v\nwant\n%+v", cfg.Files, wantFiles)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top key", "kernal:\n  image: k\n",
			`t.yml:1:1: unknown key "kernal" (did you mean "kernel"?)`},
		{"unknown image key", "onboot:\n  - name: a\n    image: b\n    imgae: c\n",
			`t.yml:4:5: onboot[0]: unknown key "imgae" (did you mean "image"?)`},
		{"wrong type list", "onboot:\n  name: a\n",
			`t.yml:2:3: onboot: expected a list, got a mapping`},
		{"wrong type string", "onboot:\n  - name: [a]\n    image: b\n",
			`t.yml:2:11: onboot[0].name: expected a string, got a list`},
		{"command not a list", "services:\n  - name: a\n    image: b\n    command: echo hi\n",
			`t.yml:4:14: services[0].command: expected a list, got a string`},
		{"missing name and image", "onboot:\n  - env: [A=1]\n",
			"t.yml:2:5: onboot[0]: name is required\nt.yml:2:5: onboot[0]: image is required"},
		{"invalid name", "onboot:\n  - name: -bad\n    image: b\n",
			`t.yml:2:11: onboot[0].name: invalid name "-bad": use letters, digits, '_', '.' and '-', starting with a letter or digit`},
		{"bad reference", "init:\n  - Keel/Init:1\n",
			`t.yml:2:5: init[0]: invalid image reference "Keel/Init:1"`},
		{"bad net", "onboot:\n  - name: a\n    image: b\n    net: bridge\n",
			`t.yml:4:10: onboot[0].net: invalid value "bridge": want "host", "new" or "none", or the absolute path of a namespace`},
		{"bad capability", "onboot:\n  - name: a\n    image: b\n    capabilities: [CAP_FLY]\n",
			`t.yml:4:20: onboot[0].capabilities[0]: unknown capability "CAP_FLY"`},
		{"bad bind", "onboot:\n  - name: a\n    image: b\n    binds: [\"/var::ro\"]\n",
			`t.yml:4:13: onboot[0].binds[0]: invalid bind "/var::ro": the destination is empty`},
		{"bad env", "onboot:\n  - name: a\n    image: b\n    env: [NOEQUALS]\n",
			`t.yml:4:11: onboot[0].env[0]: invalid variable "NOEQUALS": want KEY=value`},
		{"repeated key", "kernel:\n  image: a\n  image: b\n",
			`t.yml:3:3: kernel: key "image" given twice`},
		{"file escapes", "files:\n  - path: ../etc/x\n    contents: x\n",
			`t.yml:2:11: files[0].path: invalid path "../etc/x": ".." is not allowed`},
		{"file two kinds", "files:\n  - path: x\n    contents: x\n    directory: true\n",
			`t.yml:2:5: files[0]: contents and directory cannot be combined: give only one`},
		{"file bad mode", "files:\n  - path: x\n    contents: x\n    mode: rwx\n",
			`t.yml:4:11: files[0].mode: invalid mode "rwx": want octal permissions such as "0644"`},
		{"directory not bool", "files:\n  - path: x\n    symlink: y\n    directory: yes\n",
			`t.yml:4:16: files[0].directory: expected true or false, got a string`},
		{"null string", "kernel:\n  image: ~\n",
			"t.yml:2:10: kernel.image: expected a string, got null"},
		{"two documents", "kernel:\n  image: k\n---\ninit: [i]\n", "t.yml:3:1: a second YAML document: give one configuration per file"},
		{"not a mapping", "- a\n", "t.yml:1:1: expected a mapping, got a list"},
		{"syntax", "kernel: [\n", "t.yml:1: invalid YAML: did not find expected node content"},
		{"errors in file order", "onboot:\n  - name: x\n    imag: y\n",
			"t.yml:2:5: onboot[0]: image is required\nt.yml:3:5: onboot[0]: unknown key \"imag\" (did you mean \"image\"?)"},
	} {
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

func TestValidateErrors(t *testing.T) {
	const base = "kernel:\n  image: k\ninit: [i]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "t.yml:1:1: kernel: a kernel image is required\nt.yml:1:1: init: at least one init image is required"},
		{"duplicate file", base + "files:\n  - path: /x\n    contents: a\n  - path: x\n    directory: true\n",
			`t.yml:7:5: files[1].path: duplicate path "x" (first used at t.yml:5:5)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("t.yml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// LinuxKit requires unique names only for services: onboot and onshutdown
// bundles are NNN-name, and its examples format or mount twice.
func TestValidateRepeatedOnbootNames(t *testing.T) {
	const yml = `kernel: {image: k}
init: [i]
onboot:
  - {name: format, image: f}
  - {name: format, image: f}
onshutdown:
  - {name: format, image: f}
  - {name: format, image: f}
services:
  - {name: s, image: s, uid: format}
`
	cfg, err := Parse("t.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Each entry takes the next id; the name is the last one's, as in
	// LinuxKit, and saying so is a warning at the place that uses it.
	if got := cfg.IDs()["format"]; got != FirstID+3 {
		t.Errorf("id of format = %d, want %d", got, FirstID+3)
	}
	want := `t.yml:10:30: services[0].uid: "format" names 4 entries (onboot[0], onboot[1], onshutdown[0], onshutdown[1]): it is the id of the last, onshutdown[1], as in LinuxKit`
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Error() != want {
		t.Errorf("warnings = %v\nwant %s", cfg.Warnings, want)
	}
}

// LinuxKit's build passes a relative mount destination through to runc,
// which takes it from the container's root; keel accepts it and says so,
// at the line of each one.
func TestParseRelativeDestinations(t *testing.T) {
	const yml = `onboot:
  - name: a
    image: b
    binds: [/etc:etc-copy]
    binds.add: ["/var:../var2:ro"]
    tmpfs: ["scratch:size=1m"]
    mounts:
      - type: overlay
        source: overlay
        destination: writeable-host-etc
        options: [lowerdir=/etc]
      - {type: tmpfs, destination: /abs}
`
	cfg, err := Parse("t.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`t.yml:4:13: onboot[0].binds[0]: relative destination "etc-copy" is taken from the container's root, as runc does: "/etc-copy" (write it so)`,
		`t.yml:5:17: onboot[0].binds.add[0]: relative destination "../var2" is taken from the container's root, as runc does: "/var2" (write it so)`,
		`t.yml:6:13: onboot[0].tmpfs[0]: relative destination "scratch" is taken from the container's root, as runc does: "/scratch" (write it so)`,
		`t.yml:10:22: onboot[0].mounts[0].destination: relative destination "writeable-host-etc" is taken from the container's root, as runc does: "/writeable-host-etc" (write it so)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "---\n"} {
		cfg, err := Parse("t.yml", []byte(in))
		if err != nil || cfg.Kernel.Image != "" || cfg.Onboot != nil {
			t.Errorf("Parse(%q) = %+v, %v", in, cfg, err)
		}
	}
}

func TestNormalizeCapability(t *testing.T) {
	for in, want := range map[string]string{"chown": "CAP_CHOWN", "cap_sys_admin": "CAP_SYS_ADMIN", "ALL": "all"} {
		if got, err := NormalizeCapability(in); err != nil || got != want {
			t.Errorf("NormalizeCapability(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
