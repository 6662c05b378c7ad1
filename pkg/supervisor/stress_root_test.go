package supervisor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	onbootRuns   = flag.Int("onboot-runs", 1000, "libcontainer runs in TestReaperStressWithLibcontainer")
	orphanCount  = flag.Int("orphans", 4000, "orphans made in TestOrphansReapedToZeroZombies")
	runnerWorker = flag.Int("onboot-workers", 2, "concurrent libcontainer runs in the stress test")
)

// The reaper runs alongside libcontainer while a storm of short-lived
// children and double-forked orphans exits around it: not one container's
// or child's exit status may be lost or wrong, and nothing may be left as a
// zombie. A naive wait4(-1) reaper fails this within a few dozen runs,
// because it steals the statuses libcontainer waits for in Run.
func TestReaperStressWithLibcontainer(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	reaper := startReaper(t)
	runner := &Libcontainer{Reaper: reaper, StateDir: filepath.Join(dir, "state")}
	start := time.Now()

	stop := make(chan struct{})
	var storm sync.WaitGroup
	var stormSpawns, stormWrong atomic.Int64
	for w := 0; w < 2; w++ {
		storm.Add(1)
		go func() {
			defer storm.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code := (i*7 + w) % 50
				// Two background children and a double fork: all of them
				// outlive the shell and come back to us as orphans.
				script := fmt.Sprintf("(exit 7)& (sleep 0.00%d; exit 9)& ( (exit 5)& )& exit %d", i%10, code)
				cmd := exec.Command("/bin/busybox", "sh", "-c", script)
				exited, err := reaper.Start(cmd)
				if err != nil {
					t.Errorf("start storm child: %v", err)
					return
				}
				e := <-exited
				_ = cmd.Wait() // flushes nothing; the process is already reaped
				stormSpawns.Add(1)
				if !e.Status.Exited() || e.Code() != code {
					stormWrong.Add(1)
					t.Errorf("storm child exited %v, want %d", e, code)
				}
			}
		}()
	}

	jobs := make(chan int)
	var failures atomic.Int64
	var runners sync.WaitGroup
	for w := 0; w < *runnerWorker; w++ {
		runners.Add(1)
		go func() {
			defer runners.Done()
			for i := range jobs {
				code := i % 7
				var out, errOut bytes.Buffer
				spec := linuxkitSpec("/bin/sh", "-c", fmt.Sprintf("echo run %d; (exit 4)& exit %d", i, code))
				exit, err := runContainer(context.Background(), runner, "stress-"+strconv.Itoa(i), spec, rootfs, &out, &errOut)
				switch {
				case err != nil:
					failures.Add(1)
					t.Errorf("run %d: %v", i, err)
				case exit != code:
					failures.Add(1)
					t.Errorf("run %d: exit %v, want %d (stderr %q)", i, exit, code, errOut.String())
				case out.String() != fmt.Sprintf("run %d\n", i):
					failures.Add(1)
					t.Errorf("run %d: stdout %q", i, out.String())
				}
			}
		}()
	}
	for i := 0; i < *onbootRuns; i++ {
		jobs <- i
	}
	close(jobs)
	runners.Wait()
	close(stop)
	storm.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reaper.WaitChildless(ctx, 5*time.Millisecond); err != nil {
		t.Errorf("children still alive after the stress: %v", err)
	}
	zombies := zombieChildren(t)
	t.Logf("libcontainer runs=%d failures=%d; storm children=%d wrong=%d; orphans reaped=%d; zombies=%d; took %v",
		*onbootRuns, failures.Load(), stormSpawns.Load(), stormWrong.Load(), reaper.Orphans(), len(zombies), time.Since(start).Round(time.Millisecond))
	if len(zombies) > 0 {
		t.Errorf("zombie children left: %v", zombies)
	}
}

func TestOrphansReapedToZeroZombies(t *testing.T) {
	needRoot(t)
	reaper := startReaper(t)
	start := time.Now()
	const perShell = 200
	shells := (*orphanCount + perShell - 1) / perShell
	for s := 0; s < shells; s++ {
		// Each shell starts perShell children that outlive it and exits at
		// once without waiting for them: they are re-parented to us. They
		// sleep until killed, in the shell's process group, once it is
		// gone: a child that ended while its shell lived (a short sleep on
		// a loaded machine) would be reaped by the shell, not orphaned.
		cmd := exec.Command("/bin/busybox", "sh", "-c",
			fmt.Sprintf("i=0; while [ $i -lt %d ]; do sleep 600 & i=$((i+1)); done; exit 0", perShell))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		exited, err := reaper.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if e := <-exited; !e.Success() {
			t.Fatalf("shell %d exited %v", s, e)
		}
		_ = cmd.Wait()
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill shell %d's children: %v", s, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := reaper.WaitChildless(ctx, 5*time.Millisecond); err != nil {
		t.Errorf("children still alive: %v", err)
	}
	zombies := zombieChildren(t)
	t.Logf("orphans made=%d reaped=%d zombies=%d took %v", shells*perShell, reaper.Orphans(), len(zombies), time.Since(start).Round(time.Millisecond))
	if got := reaper.Orphans(); got < uint64(shells*perShell) {
		t.Errorf("reaped %d orphans, want at least %d", got, shells*perShell)
	}
	if len(zombies) > 0 {
		t.Errorf("zombie children left: %v", zombies)
	}
}

// zombieChildren lists our children in state Z, from /proc.
func zombieChildren(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	var zombies []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) S ppid ...": comm may hold spaces, so parse after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid == me && f[0] == "Z" {
			zombies = append(zombies, pid)
		}
	}
	return zombies
}
