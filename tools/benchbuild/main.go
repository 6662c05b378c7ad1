// Command benchbuild measures keel build on the examples: cold (empty
// cache, images pulled from a registry on 127.0.0.1), warm, and after one
// service changed, printing wall time, CPU time and peak RSS of each; then
// the throughput of keel's compression stage against the plain compressor
// on the same bytes.
//
//	go run ./tools/benchbuild [-keel bin/keel] [-examples examples] [-cache ~/.cache/keel]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/keel-os/keel/pkg/initrd"
)

func main() {
	keel := flag.String("keel", "bin/keel", "the keel binary to measure")
	examples := flag.String("examples", "examples", "directory of YAML files to build")
	source := flag.String("cache", defaultCache(), "keel cache holding the base images (an OCI layout under oci/)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*keel, *examples, *source); err != nil {
		log.Fatalf("benchbuild: %v", err)
	}
}

func defaultCache() string {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "keel")
}

// refRE finds the base images named in a YAML file.
var refRE = regexp.MustCompile(`\bkeel/[a-z0-9._-]+:[A-Za-z0-9._-]+`)

func run(keel, examples, source string) error {
	keel, err := filepath.Abs(keel)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "keel-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	files, err := filepath.Glob(filepath.Join(examples, "*.yml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no YAML files in %s", examples)
	}
	sort.Strings(files)
	refs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, r := range refRE.FindAllString(string(b), -1) {
			refs[r] = true
		}
	}

	// A registry on 127.0.0.1 holding the base images.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// Blobs on disk, not in this process's memory: see measure.
	blobs := filepath.Join(work, "registry")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))}
	go srv.Serve(ln)
	defer srv.Close()
	host := ln.Addr().String()
	if err := push(filepath.Join(source, "oci"), host, refs); err != nil {
		return err
	}

	// The examples, naming the registry's images.
	var ymls []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		s := refRE.ReplaceAllStringFunc(string(b), func(r string) string { return host + "/" + r })
		p := filepath.Join(work, filepath.Base(f))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			return err
		}
		ymls = append(ymls, p)
	}

	cache := filepath.Join(work, "cache")
	out := filepath.Join(work, "out")
	fmt.Printf("keel build of %d example(s) (%s), images from a registry on %s, %d CPUs\n\n",
		len(ymls), strings.Join(baseNames(files), ", "), host, runtime.NumCPU())
	fmt.Printf("%-22s %9s %9s %9s %9s  %s\n", "build", "wall s", "user s", "sys s", "peak MiB", "segments")
	phase := func(label string) error {
		for _, y := range ymls {
			m, err := measure(keel, cache, "build", "-dir", out, y)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", label, filepath.Base(y), err)
			}
			fmt.Printf("%-22s %9.2f %9.2f %9.2f %9d  %s\n", label+" "+strings.TrimSuffix(filepath.Base(y), ".yml"),
				m.wall.Seconds(), m.user.Seconds(), m.sys.Seconds(), m.maxRSS>>20, m.segments)
		}
		return nil
	}
	if err := phase("cold"); err != nil {
		return err
	}
	if err := phase("warm"); err != nil {
		return err
	}
	for _, y := range ymls {
		if err := changeOneService(y); err != nil {
			return err
		}
	}
	if err := phase("one changed"); err != nil {
		return err
	}

	// Compression: the same uncompressed initrd through keel's stage and
	// through the plain, one-core compressor.
	if _, err := measure(keel, cache, "build", "-q", "-compress", "none", "-dir", out, "-name", "raw", ymls[0]); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(out, "raw-initrd.img"))
	if err != nil {
		return err
	}
	fmt.Printf("\ncompression of the same %d MiB uncompressed initrd (%s), MB/s of input, best of 2:\n", len(raw)>>20, filepath.Base(ymls[0]))
	fmt.Printf("%-8s %-44s %9s %9s %8s\n", "format", "compressor", "MB/s", "out MiB", "ratio")
	stage, plain := map[string]float64{}, map[string]float64{}
	for _, c := range []struct {
		format, name string
		fn           func(io.Writer, io.Reader) error
	}{
		{"gzip", "keel stage (pgzip, 1 MiB blocks, all cores)", keelStage(initrd.Gzip)},
		{"gzip", "plain klauspost/compress gzip, 1 core", plainGzip(true)},
		{"gzip", "plain Go compress/gzip, 1 core", plainGzip(false)},
		{"zstd", "keel stage (klauspost zstd, all cores)", keelStage(initrd.Zstd)},
		{"zstd", "plain klauspost zstd, 1 core", plainZstd},
		{"lz4", "keel stage (legacy frame, all cores)", keelStage(initrd.LZ4)},
		{"lz4", "plain pierrec/lz4 legacy, 1 core", plainLZ4},
	} {
		// Best of two: the machine may be shared.
		var n countWriter
		var d time.Duration
		for i := 0; i < 2; i++ {
			n = 0
			start := time.Now()
			if err := c.fn(&n, bytes.NewReader(raw)); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if t := time.Since(start); i == 0 || t < d {
				d = t
			}
		}
		mbs := float64(len(raw)) / 1e6 / d.Seconds()
		fmt.Printf("%-8s %-44s %9.1f %9.1f %8.2f\n", c.format, c.name, mbs, float64(n)/(1<<20), float64(len(raw))/float64(n))
		if strings.HasPrefix(c.name, "keel stage") {
			stage[c.format] = mbs
		} else if _, ok := plain[c.format]; !ok {
			plain[c.format] = mbs
		}
	}
	// The limit of a parallel stage is the plain compressor on every core.
	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &load[0], &load[1], &load[2])
	}
	fmt.Printf("\nkeel stage against the limit (plain 1-core x %d CPUs; load average %.1f):", runtime.NumCPU(), load[0])
	for _, f := range []string{"gzip", "zstd", "lz4"} {
		fmt.Printf("  %s %.0f%%", f, 100*stage[f]/(plain[f]*float64(runtime.NumCPU())))
	}
	fmt.Println()
	return nil
}

func baseNames(files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	return out
}

// push copies each named image from the OCI layout to the registry.
func push(dir, host string, refs map[string]bool) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("open base images (run make images): %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	found := map[string]v1.Hash{}
	for _, d := range m.Manifests {
		r := d.Annotations["org.opencontainers.image.ref.name"]
		if refs[r] {
			found[r] = d.Digest
		}
	}
	for r := range refs {
		h, ok := found[r]
		if !ok {
			return fmt.Errorf("%s is not in %s (run make images)", r, dir)
		}
		img, err := p.Image(h)
		if err != nil {
			return err
		}
		dst, err := name.ParseReference(host+"/"+r, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img); err != nil {
			return fmt.Errorf("push %s: %w", r, err)
		}
	}
	return nil
}

type measurement struct {
	wall, user, sys time.Duration
	maxRSS          int64
	segments        string
}

const gnuTime = "/usr/bin/time"

var segRE = regexp.MustCompile(`initrd: (\d+) segments written, (\d+) reused`)

// measure runs keel with KEEL_CACHE set to cache.
//
// Go starts children with vfork, and Linux carries the peak RSS across
// execve: a child's ru_maxrss would start at this process's RSS. GNU time,
// which forks, reports the child's own peak, so keel runs under it when
// it is installed.
func measure(keel, cache string, args ...string) (measurement, error) {
	rssFile := ""
	cmd := exec.Command(keel, args...)
	if _, err := os.Stat(gnuTime); err == nil {
		f, err := os.CreateTemp("", "keel-bench-rss-")
		if err != nil {
			return measurement{}, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		cmd = exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rssFile, keel}, args...)...)
	}
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+cache)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return measurement{}, fmt.Errorf("%v\n%s", err, out.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	m := measurement{wall: wall, user: cmd.ProcessState.UserTime(), sys: cmd.ProcessState.SystemTime(), maxRSS: ru.Maxrss << 10}
	if rssFile != "" {
		b, err := os.ReadFile(rssFile)
		var kib int64
		if _, serr := fmt.Sscan(string(b), &kib); err != nil || serr != nil {
			return m, fmt.Errorf("read the peak RSS from %s: %q", gnuTime, b)
		}
		m.maxRSS = kib << 10
	}
	if s := segRE.FindStringSubmatch(out.String()); s != nil {
		m.segments = s[1] + " written, " + s[2] + " reused"
	}
	return m, nil
}

// changeOneService gives the last entry with a command one more
// environment variable: its bundle's config.json changes, nothing else.
func changeOneService(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, "command:") {
			indent := l[:len(l)-len(t)]
			lines = append(lines[:i+1], append([]string{indent + `env: ["KEEL_BENCH_CHANGED=1"]`}, lines[i+1:]...)...)
			return os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
		}
	}
	return fmt.Errorf("%s: no entry with a command to change", p)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func keelStage(c initrd.Compression) func(io.Writer, io.Reader) error {
	return func(w io.Writer, r io.Reader) error { return initrd.CompressStream(c, w, r) }
}

func plainGzip(klauspost bool) func(io.Writer, io.Reader) error {
	return func(w io.Writer, r io.Reader) error {
		var zw io.WriteCloser
		if klauspost {
			zw, _ = kgzip.NewWriterLevel(w, kgzip.DefaultCompression)
		} else {
			zw, _ = gzip.NewWriterLevel(w, gzip.DefaultCompression)
		}
		if _, err := io.Copy(zw, r); err != nil {
			return err
		}
		return zw.Close()
	}
}

func plainZstd(w io.Writer, r io.Reader) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, r); err != nil {
		return err
	}
	return zw.Close()
}

func plainLZ4(w io.Writer, r io.Reader) error {
	zw := lz4.NewWriter(w)
	if err := zw.Apply(lz4.LegacyOption(true), lz4.ConcurrencyOption(1)); err != nil {
		return err
	}
	if _, err := io.Copy(zw, r); err != nil {
		return err
	}
	return zw.Close()
}
