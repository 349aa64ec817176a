package bootstrap_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/bootstrap"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingNet is a real node as the bootstrapper's Network, counting the calls the test looks at.
type countingNet struct {
	*actors.Node
	steps, snapshots atomic.Int64
}

func (c *countingNet) OutboundCount() int {
	c.steps.Add(1) // every step asks it (joined check, top-up)
	return c.Node.OutboundCount()
}

func (c *countingNet) RoutingTable(ctx context.Context) (routing.Snapshot, error) {
	c.snapshots.Add(1)
	return c.Node.RoutingTable(ctx)
}

// TestBootstrapperAtItsTargetCopiesNoTable: once the node keeps its target of outbound connections, a step has
// nothing to top up, so it takes no copy of the routing table (every entry, every 2 s by default).
func TestBootstrapperAtItsTargetCopiesNoTable(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the nodes' own bootstrappers dial nobody
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	net := &countingNet{Node: a}
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval = []session.PeerAddr{b.Addr()}, 1, 10*time.Millisecond
	props, err := bootstrap.NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	sys := a.ActorSystem()
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	testkit.WaitFor(t, 10*time.Second, func() bool { return a.OutboundCount() == 1 }, "a to keep its bootnode")
	snapshots, steps := net.snapshots.Load(), net.steps.Load()
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.steps.Load() >= steps+20 }, "10 more steps")
	if got := net.snapshots.Load(); got != snapshots {
		t.Fatalf("%d table copies in steps at the outbound target, want none", got-snapshots)
	}
	if a.OutboundCount() != 1 {
		t.Fatalf("a keeps %d outbound connections, want 1", a.OutboundCount())
	}
}
