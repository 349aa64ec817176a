package bootstrap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/bootstrap"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingNet is a real node as the bootstrapper's Network, counting the calls the test looks at and recording
// what the steps said of the join (SetJoining).
type countingNet struct {
	*actors.Node
	steps, snapshots atomic.Int64
	joiningSaid      atomic.Int64 // steps that said the node is joining
	joining          atomic.Bool  // what the last step said
	reports          atomic.Int64 // SetJoining calls
}

func (c *countingNet) SetJoining(joining bool) {
	if joining {
		c.joiningSaid.Add(1)
	}
	c.joining.Store(joining)
	c.reports.Add(1)
}

func (c *countingNet) OutboundCount() int {
	c.steps.Add(1) // every step asks it (joined check, top-up)
	return c.Node.OutboundCount()
}

func (c *countingNet) RoutingTable(ctx context.Context) (routing.Snapshot, error) {
	c.snapshots.Add(1)
	return c.Node.RoutingTable(ctx)
}

// spawnBootstrapper runs a bootstrapper with cfg on node's actor system until the test ends.
func spawnBootstrapper(t *testing.T, node *actors.Node, cfg bootstrap.Config, net bootstrap.Network) {
	t.Helper()
	props, err := bootstrap.NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	sys := node.ActorSystem()
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
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
	spawnBootstrapper(t, a, cfg, net)

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

// TestBootstrapperIsJoiningWhileItDialsForMore: a node short of its outbound target is joining while its steps
// dial candidates, and not once it has nobody left to dial: here a network of three nodes, where it keeps two
// outbound connections of the eight it wants. Topic discovery waits while the node joins (gossip.Network.Joining);
// counted as joining for as long as it is short of its target, a node of a small network never registered on a
// topic.
func TestBootstrapperIsJoiningWhileItDialsForMore(t *testing.T) {
	a, b, _ := threeNodes(t)
	net := &countingNet{Node: a}
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval = []session.PeerAddr{b.Addr()}, 8, 10*time.Millisecond
	spawnBootstrapper(t, a, cfg, net)

	testkit.WaitFor(t, 10*time.Second, func() bool { return a.OutboundCount() == 2 }, "a to keep b and c")
	reports := net.reports.Load()
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.reports.Load() >= reports+5 }, "5 more steps")
	if net.joining.Load() {
		t.Fatal("a node with nobody left to dial still joining, want not")
	}
	if net.joiningSaid.Load() == 0 {
		t.Fatal("no step said the node was joining while it dialed b and c")
	}
}

// threeNodes starts three nodes whose own bootstrappers dial nobody, b connected to c, so that a's lookups through
// b find both.
func threeNodes(t *testing.T) (a, b, c *actors.Node) {
	t.Helper()
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
	}))
	a, b, c = nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	if err := b.Connect(context.Background(), c.Addr(), true); err != nil {
		t.Fatal(err)
	}
	return a, b, c
}

// lookupCountingNet counts the bootstrapper's lookups.
type lookupCountingNet struct {
	countingNet
	lookups atomic.Int64
}

func (c *lookupCountingNet) FindClosest(ctx context.Context, target routing.Key) (routing.LookupResult, error) {
	c.lookups.Add(1)
	return c.Node.FindClosest(ctx, target)
}

func (c *lookupCountingNet) FindClosestFrom(ctx context.Context, target routing.Key, seeds []session.PeerAddr) (routing.LookupResult, error) {
	c.lookups.Add(1)
	return c.Node.FindClosestFrom(ctx, target, seeds)
}

// TestBootstrapperStopsEarlyRefreshesOnceTheNeighbourhoodSettles: the young table's refreshes (gap from Interval,
// doubling) stop once two self-lookups at least 8 intervals apart find the same neighbours; the next is
// RefreshInterval later. With the gap doubling from 10 ms: the join's two lookups, then refreshes at 10, 30, 70 and
// 150 ms, the last two 80 ms apart; without the stop, 75 steps would have run 6 refreshes or more.
func TestBootstrapperStopsEarlyRefreshesOnceTheNeighbourhoodSettles(t *testing.T) {
	a, b, _ := threeNodes(t)
	net := &lookupCountingNet{countingNet: countingNet{Node: a}}
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval, cfg.RefreshInterval = []session.PeerAddr{b.Addr()}, 1, 10*time.Millisecond, time.Hour
	spawnBootstrapper(t, a, cfg, net)

	testkit.WaitFor(t, 10*time.Second, func() bool { return net.steps.Load() >= 150 }, "75 steps")
	if got := net.lookups.Load(); got < 2 || got > 6 {
		t.Fatalf("%d lookups in 75 steps, want 2-6 (the join's, then early refreshes until two 8 intervals apart agree)", got)
	}
	snap, err := a.RoutingTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Entries) != 2 {
		t.Fatalf("a's table holds %d nodes, want b and c", len(snap.Entries))
	}
}

// lateBootnodeNet is a real node whose bootnode is out of reach while gated; it counts the refresh self-lookups
// (the join's self-lookup goes through FindClosestFrom) made after the first join that reached the bootnode.
type lateBootnodeNet struct {
	countingNet
	gated       atomic.Bool
	bootnode    session.NodeID
	joinedAt    atomic.Int64 // steps counted when the join reached the bootnode; 0 before
	afterJoined atomic.Int64 // refresh self-lookups since
}

func (c *lateBootnodeNet) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	if c.gated.Load() && addr.ID == c.bootnode {
		return errors.New("bootnode out of reach")
	}
	return c.Node.Connect(ctx, addr, keep)
}

func (c *lateBootnodeNet) FindClosestFrom(ctx context.Context, target routing.Key, seeds []session.PeerAddr) (routing.LookupResult, error) {
	c.joinedAt.CompareAndSwap(0, c.steps.Load())
	return c.Node.FindClosestFrom(ctx, target, seeds)
}

func (c *lateBootnodeNet) FindClosest(ctx context.Context, target routing.Key) (routing.LookupResult, error) {
	if target == routing.KeyOf(c.ID()) && c.joinedAt.Load() != 0 {
		c.afterJoined.Add(1)
	}
	return c.Node.FindClosest(ctx, target)
}

// TestEarlyRefreshesCountFromALateJoin: a node whose bootnode was out of reach for its first 100 steps refreshes
// its young table early after it joins (Config.RefreshInterval: the gap starts at Interval and doubles), here at
// about 1, 3 and 7 steps after the join. The failed joins used to advance the schedule as refreshes: 100 failed
// steps at Interval 10 ms took the gap past a second, and the first refresh came ~100 steps after the join.
func TestEarlyRefreshesCountFromALateJoin(t *testing.T) {
	a, b, _ := threeNodes(t)
	net := &lateBootnodeNet{countingNet: countingNet{Node: a}, bootnode: b.ID()}
	net.gated.Store(true)
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval, cfg.RefreshInterval = []session.PeerAddr{b.Addr()}, 1, 10*time.Millisecond, time.Hour
	spawnBootstrapper(t, a, cfg, net)

	testkit.WaitFor(t, 20*time.Second, func() bool { return net.steps.Load() >= 200 }, "100 steps with the bootnode out of reach")
	net.gated.Store(false)
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.joinedAt.Load() != 0 }, "the join through the bootnode")
	joined := net.joinedAt.Load()
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.steps.Load() >= joined+40 }, "20 steps after the join")
	if got := net.afterJoined.Load(); got < 3 {
		t.Fatalf("%d refresh self-lookups in the 20 steps after a late join, want 3 or more (the young table's early refreshes)", got)
	}
}

// panickyNet is a real node whose OutboundCount panics on its first calls, as a bug in a Network call would.
type panickyNet struct {
	countingNet
	panics atomic.Int64
}

func (p *panickyNet) OutboundCount() int {
	if p.panics.Add(-1) >= 0 {
		panic("test: a bug in a Network call")
	}
	return p.countingNet.OutboundCount()
}

// A step that panics (in a Network call: the steps run outside the actor's Receive, where no supervisor catches a
// panic) fails alone: the process goes on, and so do the steps after it. It used to end the process.
func TestAPanickingStepFailsAlone(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the nodes' own bootstrappers dial nobody
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	net := &panickyNet{countingNet: countingNet{Node: a}}
	net.panics.Store(3)
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval = []session.PeerAddr{b.Addr()}, 1, 10*time.Millisecond
	spawnBootstrapper(t, a, cfg, net)
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.OutboundCount() == 1 }, "a to keep its bootnode after 3 failed steps")
	if left := net.panics.Load(); left >= 0 {
		t.Fatalf("%d panics left: the steps did not call OutboundCount as expected", left+1)
	}
}

// islandNet is a real node whose bootnode is out of reach while gated: dialing it fails, and a lookup from it
// finds only the peer the node already has (the island).
type islandNet struct {
	countingNet
	gated     atomic.Bool
	bootnode  session.NodeID
	peer      routing.Entry
	fromCalls atomic.Int64 // lookups from the bootnodes: joins
}

func (c *islandNet) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	if c.gated.Load() && addr.ID == c.bootnode {
		return errors.New("bootnode out of reach")
	}
	return c.Node.Connect(ctx, addr, keep)
}

func (c *islandNet) FindClosestFrom(ctx context.Context, target routing.Key, seeds []session.PeerAddr) (routing.LookupResult, error) {
	c.fromCalls.Add(1)
	if c.gated.Load() {
		return routing.LookupResult{Closest: []routing.Entry{c.peer}}, nil
	}
	return c.Node.FindClosestFrom(ctx, target, seeds)
}

// TestAStrandedNodeJoinsAgainThroughItsBootnodes: a node that joined knowing only one peer, its bootnode out of
// reach, is an island its own lookups never leave (they ask only that peer). Short of its target with nobody
// left to dial, it joins again through its bootnodes, at gaps that double from Interval (a few joins in 60
// steps, not one a step); once the bootnode answers, it finds and keeps c. Before, a node whose table was not
// empty never went back to its bootnodes.
func TestAStrandedNodeJoinsAgainThroughItsBootnodes(t *testing.T) {
	nw := testkit.NewNetwork(t, 4, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the nodes' own bootstrappers dial nobody
	}))
	a, x, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]
	nw.Connect(2, 3) // b knows c
	nw.Connect(0, 1) // a's island: x
	net := &islandNet{countingNet: countingNet{Node: a}, bootnode: b.ID(),
		peer: routing.Entry{ID: x.ID(), Key: routing.KeyOf(x.ID()), Addr: x.Addr().Addr}}
	net.gated.Store(true)
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{b.Addr()}, 8
	cfg.Interval, cfg.RefreshInterval = 10*time.Millisecond, time.Second
	spawnBootstrapper(t, a, cfg, net)

	testkit.WaitFor(t, 20*time.Second, func() bool { return net.snapshots.Load() >= 60 }, "60 steps short of the target")
	if got := net.fromCalls.Load(); got < 2 || got > 10 {
		t.Fatalf("%d joins through the bootnodes in 60 stranded steps, want 2-10 (the first, then at doubling gaps)", got)
	}
	net.gated.Store(false)
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.Connected(c.ID()) }, "a to find and keep c through b")
}

// A bootnode that cannot be reached is logged at warn once, then at debug while the join is retried at every step:
// a node whose bootnode was down (or was itself) logged it every 2 s for good.
func TestAnUnreachableBootnodeIsWarnedOfOnce(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the node's own bootstrapper dials nobody
	}))
	net := &countingNet{Node: nw.Nodes[0]}
	dead, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.SyncBuffer
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes = []session.PeerAddr{{ID: dead.NodeID(), Addr: testkit.FreeAddr(t)}}
	cfg.Interval = 10 * time.Millisecond
	cfg.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
	cfg.StorePath = filepath.Join(t.TempDir(), "peers.pb")
	if err := os.WriteFile(cfg.StorePath, []byte{0xff, 0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	spawnBootstrapper(t, nw.Nodes[0], cfg, net)
	testkit.WaitFor(t, 20*time.Second, func() bool { return strings.Count(logs.String(), `"bootnode unreachable`) >= 5 },
		"five joins through the unreachable bootnode")
	warned := func(msg string) (warn, all int) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, msg) {
				all++
				if strings.Contains(line, `"level":"warn"`) {
					warn++
				}
			}
		}
		return warn, all
	}
	// The bad peer store too is warned of once, then logged at debug at each join.
	for _, msg := range []string{`"bootnode unreachable`, `"ignoring the peer store"`} {
		if warn, all := warned(msg); warn != 1 || all < 5 {
			t.Fatalf("%s logged at warn %d times in %d joins, want once", msg, warn, all)
		}
	}
}

// NewActorProps without a Network fails with ErrInvalidConfig (the actor panicked on its first use of it).
func TestNewActorPropsNeedsANetwork(t *testing.T) {
	if _, err := bootstrap.NewActorProps(bootstrap.DefaultConfig(), nil); !errors.Is(err, bootstrap.ErrInvalidConfig) {
		t.Fatalf("NewActorProps with a nil Network: %v, want ErrInvalidConfig", err)
	}
}

// A node whose bootnode is down logs it at info or above once, the bootstrapper's warning: the peer manager's
// "dial failed" for each retry, at info, came every step for as long as the bootnode stayed down (an audit's
// finding: 10 lines in 20 s at the default interval).
func TestADownBootnodeIsLoggedAboveDebugOnce(t *testing.T) {
	dead, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.SyncBuffer
	testkit.NewNetwork(t, 1, testkit.WithLogger(zerolog.New(&logs)), testkit.WithLogLevel(zerolog.DebugLevel),
		testkit.WithConfig(func(_ int, cfg *actors.Config) {
			cfg.Bootstrap.Bootnodes = []session.PeerAddr{{ID: dead.NodeID(), Addr: testkit.FreeAddr(t)}}
			cfg.Bootstrap.Interval = 10 * time.Millisecond
		}))
	testkit.WaitFor(t, 20*time.Second, func() bool { return strings.Count(logs.String(), `"dial failed"`) >= 5 },
		"five dials of the down bootnode")
	loud := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, dead.NodeID().Short()) && !strings.Contains(line, `"level":"debug"`) {
			loud++
		}
	}
	if loud != 1 {
		t.Fatalf("the down bootnode was logged above debug %d times in %d dials, want once (the bootstrapper's warning)",
			loud, strings.Count(logs.String(), `"dial failed"`))
	}
}

// TestTopUpStopsAtTheTarget: a step tops the node up to TargetOutbound ("how many outbound connections the
// bootstrapper keeps"), not past it: it counts each candidate it connects and stops dialing at the target, though
// more candidates are known. Here a knows four nodes through its bootnode and keeps two.
func TestTopUpStopsAtTheTarget(t *testing.T) {
	nw := testkit.NewNetwork(t, 5, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the nodes' own bootstrappers dial nobody
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	for _, o := range nw.Nodes[2:] {
		if err := b.Connect(context.Background(), o.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	net := &countingNet{Node: a}
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval = []session.PeerAddr{b.Addr()}, 2, 10*time.Millisecond
	spawnBootstrapper(t, a, cfg, net)
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.OutboundCount() >= 2 }, "a to reach its target")
	reports := net.reports.Load()
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.reports.Load() >= reports+10 }, "10 more steps")
	if n := a.OutboundCount(); n != 2 {
		t.Fatalf("a keeps %d outbound connections, want its target 2", n)
	}
}

// refusingNet is a countingNet whose Connect to one node always fails, counting the attempts.
type refusingNet struct {
	*countingNet
	refused session.NodeID
	dials   atomic.Int64
}

func (r *refusingNet) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	if addr.ID == r.refused {
		r.dials.Add(1)
		return errors.New("refused by the test")
	}
	return r.countingNet.Connect(ctx, addr, keep)
}

// TestAFailedCandidateIsNotDialedAgainWithinItsBackoff: a candidate whose dial failed waits out its backoff (at
// least DialBackoffBase) before the bootstrapper dials it again, though every step in between is short of its
// target and has it in the table: without it, a node dialed each unreachable node of its table at every step.
func TestAFailedCandidateIsNotDialedAgainWithinItsBackoff(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // the nodes' own bootstrappers dial nobody
	}))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	if err := b.Connect(context.Background(), c.Addr(), true); err != nil {
		t.Fatal(err)
	}
	net := &refusingNet{countingNet: &countingNet{Node: a}, refused: c.ID()}
	cfg := bootstrap.DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound, cfg.Interval = []session.PeerAddr{b.Addr()}, 8, 10*time.Millisecond
	cfg.DialBackoffBase, cfg.DialBackoffMax = 2*time.Second, time.Minute
	spawnBootstrapper(t, a, cfg, net)
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.dials.Load() > 0 }, "a to dial c")
	// 20 steps, 10 ms apart (about 300 ms under the race detector): well within c's backoff of 2 s and more.
	reports := net.reports.Load()
	testkit.WaitFor(t, 10*time.Second, func() bool { return net.reports.Load() >= reports+20 }, "20 more steps")
	if n := net.dials.Load(); n != 1 {
		t.Fatalf("c, unreachable, dialed %d times in its backoff, want once", n)
	}
}
