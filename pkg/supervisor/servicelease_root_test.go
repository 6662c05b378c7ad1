package supervisor

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/keel-os/keel/pkg/bundle"
	"github.com/keel-os/keel/pkg/mount"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Every container create of a service, restarts included, carries keel's
// lease, in each namespace: not one the client makes and deletes around
// the call. The calls are seen on the wire, through a client whose
// connection records each create's lease header.
func TestServiceCreatesCarryKeelsLease(t *testing.T) {
	needRoot(t)
	log := slog.New(slog.DiscardHandler)
	reaper := startReaper(t)
	cd := startTestContainerd(t, reaper, log)

	var mu sync.Mutex
	var creates [][]string // the lease header of each Containers/Create
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == "/containerd.services.containers.v1.Containers/Create" {
			md, _ := metadata.FromOutgoingContext(ctx)
			mu.Lock()
			creates = append(creates, md.Get(leases.GRPCHeader))
			mu.Unlock()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn, err := grpc.NewClient("unix://"+cd.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(record))
	if err != nil {
		t.Fatal(err)
	}
	client, err := containerd.NewWithConn(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	// Services only ever ask their Containerd for its client.
	watched := &Containerd{client: client, gen: make(chan struct{})}

	root := t.TempDir()
	var mounts mount.Table
	t.Cleanup(func() {
		if err := mounts.UnmountAll(mount.Syscalls{}); err != nil {
			t.Error(err)
		}
	})
	s := &Services{
		Containerd: watched,
		Preparer:   &Preparer{Mounts: &mounts},
		Log:        log,
		LogDir:     filepath.Join(root, "var/log"),
		Backoff:    Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Reset: 10 * time.Second},
		Runtime:    testRuntime(t),
	}
	s.Start(context.Background(), []bundle.Bundle{
		writeService(t, root, "crasher", &bundle.Runtime{Restart: "always"}, `exit 3`),
		writeService(t, root, "elsewhere", &bundle.Runtime{Namespace: "keel-test-other"}, `trap 'exit 0' TERM; while true; do sleep 1; done`),
	})
	t.Cleanup(func() { _ = s.StopServices(context.Background()) })
	// Waited for on the wire: the restart count goes up before the
	// restart's create is sent.
	waitFor(t, time.Minute, "4 container creates (crasher 3 times, elsewhere once)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(creates) >= 4
	})

	mu.Lock()
	defer mu.Unlock()
	for i, l := range creates {
		if len(l) != 1 || l[0] != ServiceLease {
			t.Errorf("create %d ran under lease %q, want %q", i, l, ServiceLease)
		}
	}
}
