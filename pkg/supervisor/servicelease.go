package supervisor

import (
	"context"
	"log/slog"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// ServiceLease is the containerd lease, one per namespace, that keel's
// calls for services run under.
//
// Without a lease in its context the client wraps every NewContainer in
// one of its own, created before and deleted after: two more round trips
// and two more metadata (bolt) write transactions per service, to keep an
// image's content and snapshots from the garbage collector while the
// container is made. keel's service containers have neither: their root
// is the bundle's rootfs, and their tasks have no mounts for containerd to
// activate. Measured under TCG (make bench-boot's three services), the
// three NewContainer calls took 0.42 s with the client's leases and 0.04 s
// under this one. The lease holds no resources, so it keeps nothing from
// the collector.
const ServiceLease = "keel-services"

// serviceLeases makes ServiceLease in each namespace once per client
// (each containerd start: the lease itself outlives a restart, being in
// containerd's database, but a new database would not have it). Its zero
// value is ready; one is shared by all the services.
type serviceLeases struct {
	mu sync.Mutex
	// client is the client whose namespaces made lists; a new client
	// starts afresh, so the old one is not kept alive here.
	client *containerd.Client
	made   map[string]bool // namespaces
}

// with returns ctx, which names namespace ns, under ServiceLease. If the
// lease cannot be made, ctx comes back as it was, and the client makes
// its own as before.
func (l *serviceLeases) with(ctx context.Context, client *containerd.Client, ns string, log *slog.Logger) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != client {
		l.client, l.made = client, map[string]bool{}
	}
	if !l.made[ns] {
		_, err := client.LeasesService().Create(ctx, leases.WithID(ServiceLease))
		if err != nil && !errdefs.IsAlreadyExists(err) {
			log.Warn("containerd: no service lease, each create makes its own", "namespace", ns, "err", err)
			return ctx
		}
		l.made[ns] = true
	}
	return leases.WithLease(ctx, ServiceLease)
}
