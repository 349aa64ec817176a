package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// The tests of this file run tens of real nodes with gossip; their helpers are in gossipnet_test.go.

func TestGossipFiftyNodesDeliverEveryMessageExactlyOnce(t *testing.T) {
	const (
		n     = 50
		msgs  = 100
		topic = "large"
	)
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 50))
	edges := randomGraph(rng, 0, n, 5)
	nw, _, _ := memGossipNetwork(t, n, edges, nil)
	all := indices(0, n)
	boxes := subscribeAll(t, nw.Nodes, topic)
	waitMeshes(t, nw.Nodes, topic, 1)
	waitMeshFormed(t, nw.Nodes, all, topic)
	t.Logf("%d nodes, %d edges, mesh formed in %v", n, len(edges), time.Since(start))

	published := make([]int, n) // publications per node
	ids := make([]gossip.MsgID, 0, msgs+1)
	pubStart := time.Now()
	for k := range msgs {
		p := rng.IntN(n)
		// No retry on ErrNoPeers: every node has topic peers by now.
		ids = append(ids, publish(t, nw.Nodes[p], topic, fmt.Sprintf("message %d", k), false))
		published[p]++
	}
	waitDelivered(t, boxes, all, ids, 20*time.Second, "every node delivered every message")
	// A final marker: once it is everywhere, a late duplicate of the earlier messages would have been delivered.
	p := rng.IntN(n)
	ids = append(ids, publish(t, nw.Nodes[p], topic, "marker", false))
	published[p]++
	waitDelivered(t, boxes, all, ids[msgs:], 10*time.Second, "every node delivered the marker")
	t.Logf("%d messages delivered to %d nodes in %v", len(ids), n, time.Since(pubStart))
	checkExactlyOnce(t, boxes, all, ids, false)

	var (
		sum    gossip.Stats
		delays uint64
	)
	for i, node := range nw.Nodes {
		st, err := node.GossipStats(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		r := st.Router
		nonLocal := uint64(len(ids) - published[i])
		if (r.Delivered != uint64(len(ids)) || r.Published != uint64(published[i]) || st.Delay.Count != nonLocal || st.Hops.Count != nonLocal) && !t.Failed() {
			t.Errorf("node %d stats: delivered %d (want %d), published %d (want %d), delay samples %d and hop samples %d (want %d)",
				i, r.Delivered, len(ids), r.Published, published[i], st.Delay.Count, st.Hops.Count, nonLocal)
		}
		// Each message from another node is checked once, on its first copy: duplicates are not.
		if st.Verified != nonLocal && !t.Failed() {
			t.Errorf("node %d checked %d signatures, want %d (one per message from another node)", i, st.Verified, nonLocal)
		}
		if st.DeliveryDropped != 0 || r.Rejected != 0 || r.Ignored != 0 || r.Dropped != 0 || st.RateLimited != 0 || st.BadSignatures != 0 {
			t.Errorf("node %d: dropped deliveries %d, rejected %d, ignored %d, dropped %d, rate-limited %d, bad signatures %d",
				i, st.DeliveryDropped, r.Rejected, r.Ignored, r.Dropped, st.RateLimited, st.BadSignatures)
		}
		sum.Delivered += r.Delivered
		sum.Published += r.Published
		sum.Duplicates += r.Duplicates
		sum.IHaveSent += r.IHaveSent
		sum.IWantSent += r.IWantSent
		sum.GraftsSent += r.GraftsSent
		sum.PrunesSent += r.PrunesSent
		delays += st.Delay.Count
	}
	if sum.Delivered != n*uint64(len(ids)) || sum.Published != uint64(len(ids)) || delays != (n-1)*uint64(len(ids)) {
		t.Errorf("totals: delivered %d (want %d), published %d (want %d), delay samples %d (want %d)",
			sum.Delivered, n*len(ids), sum.Published, len(ids), delays, (n-1)*len(ids))
	}
	// Only logged: meshes below Dlo (once caused by GRAFTs overtaking the subscription, see
	// TestGossipLateSubscriberJoinsMesh; now possible when popular peers prune above Dhi).
	t.Logf("%d of %d nodes have a mesh below min(Dlo, topic peers)", thinMeshes(t, nw.Nodes, topic), n)
	t.Logf("totals: %d duplicates (%.2f per delivery), %d IHAVE ids, %d IWANT ids, %d grafts, %d prunes; test took %v",
		sum.Duplicates, float64(sum.Duplicates)/float64(delays), sum.IHaveSent, sum.IWantSent, sum.GraftsSent, sum.PrunesSent, time.Since(start))
}

func TestGossipDeliversAfterTwentyPercentKilled(t *testing.T) {
	const (
		n      = 50
		killed = 10
		topic  = "kill"
	)
	start := time.Now()
	rng := rand.New(rand.NewPCG(2, 50))
	edges := randomGraph(rng, 0, n, 7)
	nw, _, trs := memGossipNetwork(t, n, edges, nil)
	all := indices(0, n)
	boxes := subscribeAll(t, nw.Nodes, topic)
	waitMeshes(t, nw.Nodes, topic, 1)
	waitMeshFormed(t, nw.Nodes, all, topic)

	var before []gossip.MsgID
	for k := range 10 {
		before = append(before, publish(t, nw.Nodes[rng.IntN(n)], topic, fmt.Sprintf("before %d", k), false))
	}
	waitDelivered(t, boxes, all, before, 10*time.Second, "every node delivered the messages published before the kill")

	// Kill 10 nodes such that the survivors stay connected.
	dead, live := survivableKill(t, rng, n, killed, edges)
	// The survivors whose tree parent dies take another at once and report the broken link (a TreeCut).
	orphans := make(map[int]bool)
	index := make(map[session.NodeID]int)
	for i, nd := range nw.Nodes {
		index[nd.ID()] = i
	}
	for _, i := range live {
		info, err := nw.Nodes[i].Topic(ctxTimeout(t, 5*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := index[info.Parent]; ok && !info.Parent.IsZero() && dead[p] {
			orphans[i] = true
		}
	}
	killStart := time.Now()
	for i := range dead {
		trs[i].Kill()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = nw.Nodes[i].Close()
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("closing killed node %d hangs", i)
		}
	}
	t.Logf("killed %d nodes in %v", killed, time.Since(killStart))

	var after []gossip.MsgID
	for k := range 20 {
		// Right after the kill a node may not have learned its new peers' subscriptions yet: ErrNoPeers is retried.
		after = append(after, publish(t, nw.Nodes[live[rng.IntN(len(live))]], topic, fmt.Sprintf("after %d", k), true))
	}
	waitDelivered(t, boxes, live, after, 20*time.Second, "every live node delivered every message published after the kill")
	marker := publish(t, nw.Nodes[live[rng.IntN(len(live))]], topic, "marker", true)
	waitDelivered(t, boxes, live, []gossip.MsgID{marker}, 10*time.Second, "every live node delivered the marker")
	checkExactlyOnce(t, boxes, live, slices.Concat(before, after, []gossip.MsgID{marker}), false)
	var cuts uint64
	for _, i := range live {
		st, err := nw.Nodes[i].GossipStats(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(before) + len(after) + 1); (st.Router.Delivered != want || st.DeliveryDropped != 0) && !t.Failed() {
			t.Errorf("node %d: delivered %d (want %d), dropped deliveries %d", i, st.Router.Delivered, want, st.DeliveryDropped)
		}
		if orphans[i] && st.Router.TreeCuts == 0 {
			t.Errorf("node %d lost its tree parent in the kill but found no cut", i)
		}
		cuts += st.Router.TreeCuts
		// The repair's control stays within every peer's control budget (RelayConfig.PeerControlRate), here with
		// heartbeats ten times as frequent as the default's: none of it is refused.
		if st.RateLimitedControl != 0 {
			t.Errorf("node %d refused %d RPCs of honest control for the peers' control budget", i, st.RateLimitedControl)
		}
		// The roots sign their beacons and every node checks them (RelayConfig.VerifySignatures): an honest network
		// refuses none, before or after the kill. The root itself may have checked none: it signs its beacons, and
		// one that never heard of a better root had no other to check (CI met it once).
		info, err := nw.Nodes[i].Topic(ctxTimeout(t, 5*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		isRoot := info.Root == nw.Nodes[i].ID()
		if st.Router.TreeBadBeacons != 0 || (st.Router.TreeBeaconsChecked == 0 && !isRoot) {
			t.Errorf("node %d: %d tree beacons refused, %d checked; want none refused and some checked", i,
				st.Router.TreeBadBeacons, st.Router.TreeBeaconsChecked)
		}
	}
	if len(orphans) > 0 && cuts <= uint64(len(orphans)) {
		t.Errorf("%d cuts found or heard of on the live nodes, %d orphans: no cut crossed the wire", cuts, len(orphans))
	}
	t.Logf("%d orphans, %d cuts on the live nodes", len(orphans), cuts)
	t.Logf("%d edges; 20 messages + marker delivered to %d live nodes %v after the kill; test took %v",
		len(edges), len(live), time.Since(killStart), time.Since(start))
}

func TestGossipPartitionHeals(t *testing.T) {
	const (
		n     = 20
		half  = n / 2
		topic = "split"
	)
	start := time.Now()
	rng := rand.New(rand.NewPCG(3, 20))
	edges := slices.Concat(randomGraph(rng, 0, half, 4), randomGraph(rng, half, half, 4))
	var cross [][2]int
	for len(cross) < 6 {
		a, b := rng.IntN(half), half+rng.IntN(half)
		if slices.ContainsFunc(cross, func(e [2]int) bool { return (e[0] == a && e[1] == b) || (e[0] == b && e[1] == a) }) {
			continue
		}
		if len(cross)%2 == 1 { // dialed from either side
			a, b = b, a
		}
		cross = append(cross, [2]int{a, b})
	}
	edges = append(edges, cross...)
	nw, mn, _ := memGossipNetwork(t, n, edges, func(_ int, cfg *actors.Config) {
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 50*time.Millisecond, 500*time.Millisecond, 1000
	})
	halfA, halfB, all := indices(0, half), indices(half, n), indices(0, n)
	inA := func(i int) bool { return i < half }
	boxes := subscribeAll(t, nw.Nodes, topic)
	waitMeshes(t, nw.Nodes, topic, 1)
	waitMeshFormed(t, nw.Nodes, all, topic)

	side := make(map[session.NodeID]bool) // node id → in half A
	var addrsA, addrsB []string
	for i, node := range nw.Nodes {
		side[node.ID()] = inA(i)
		if inA(i) {
			addrsA = append(addrsA, node.Addr().Addr)
		} else {
			addrsB = append(addrsB, node.Addr().Addr)
		}
	}
	crossConns := func() int {
		c := 0
		for i, node := range nw.Nodes {
			for _, p := range node.Peers() {
				if side[p.ID] != inA(i) {
					c++
				}
			}
		}
		return c
	}
	mn.Partition(addrsA, addrsB)
	testkit.WaitFor(t, 10*time.Second, func() bool { return crossConns() == 0 }, "no connection across the partition")

	idA := publish(t, nw.Nodes[rng.IntN(half)], topic, "in A while split", false)
	idB := publish(t, nw.Nodes[half+rng.IntN(half)], topic, "in B while split", false)
	waitDelivered(t, boxes, halfA, []gossip.MsgID{idA}, 10*time.Second, "half A delivered its message")
	waitDelivered(t, boxes, halfB, []gossip.MsgID{idB}, 10*time.Second, "half B delivered its message")
	// Checked now, before healing: after it, a message still in a message cache may legitimately be pulled across
	// by IHAVE/IWANT. Each half delivered its own message over paths of the same length as any path across would
	// have been, so a leak would have shown by now.
	for _, i := range halfB {
		if boxes[i].times(idA) != 0 {
			t.Errorf("node %d of half B delivered half A's message during the partition", i)
		}
	}
	for _, i := range halfA {
		if boxes[i].times(idB) != 0 {
			t.Errorf("node %d of half A delivered half B's message during the partition", i)
		}
	}
	if crossConns() != 0 {
		t.Fatal("a connection crossed the partition")
	}

	healStart := time.Now()
	mn.HealAll()
	testkit.WaitFor(t, 15*time.Second, func() bool {
		for _, e := range cross {
			if !nw.Nodes[e[0]].Connected(nw.Nodes[e[1]].ID()) || !nw.Nodes[e[1]].Connected(nw.Nodes[e[0]].ID()) {
				return false
			}
		}
		return true
	}, "the %d connections across the cut are back", len(cross))
	waitMeshFormed(t, nw.Nodes, all, topic)
	t.Logf("partition healed, connections and meshes back in %v", time.Since(healStart))

	var healed []gossip.MsgID
	for k := range 10 {
		from := rng.IntN(half) // alternately from each half
		if k%2 == 1 {
			from += half
		}
		healed = append(healed, publish(t, nw.Nodes[from], topic, fmt.Sprintf("healed %d", k), false))
	}
	waitDelivered(t, boxes, all, healed, 15*time.Second, "every node delivered every message published after healing")
	marker := publish(t, nw.Nodes[rng.IntN(n)], topic, "marker", false)
	waitDelivered(t, boxes, all, []gossip.MsgID{marker}, 10*time.Second, "every node delivered the marker")
	// The messages published while split may have crossed after healing (pulled from a message cache): others.
	checkExactlyOnce(t, boxes, all, append(healed, marker), true)

	// The mesh repaired across the cut: some node of half A has a mesh link (eager or lazy) to half B.
	var links int
	testkit.WaitFor(t, 5*time.Second, func() bool {
		links = 0
		for _, i := range halfA {
			info, err := nw.Nodes[i].Topic(ctxTimeout(t, 5*time.Second), topic)
			if err != nil {
				return false
			}
			for _, id := range slices.Concat(info.Eager, info.Lazy) {
				if !side[id] {
					links++
				}
			}
		}
		return links > 0
	}, "a mesh link from half A to half B")
	t.Logf("%d mesh links from A to B; test took %v", links, time.Since(start))
}

func TestGossipSubscriberValidatorTimeoutIgnores(t *testing.T) {
	const timeout = 200 * time.Millisecond
	// a - b - c over TCP: b's validator holds "slow" until its context ends.
	nw := gossipNetwork(t, 3, testkit.Line(3), func(_ int, cfg *actors.Config) {
		cfg.Gossip.Router.ValidationTimeout = timeout
	})
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	var (
		mu       sync.Mutex
		ran      int
		held     time.Duration
		budget   time.Duration // what was left of the validator's context when it started
		ctxErr   error
		returned = make(chan struct{})
	)
	slow := gossip.WithValidator(func(ctx context.Context, d *gossip.Delivery) gossip.Verdict {
		if s, ok := d.Payload.(*wrapperspb.StringValue); !ok || s.GetValue() != "slow" {
			return gossip.Accept
		}
		t0 := time.Now()
		deadline, ok := ctx.Deadline()
		<-ctx.Done()
		mu.Lock()
		defer mu.Unlock()
		ran++
		held, ctxErr = time.Since(t0), ctx.Err()
		if budget = -1; ok {
			budget = deadline.Sub(t0)
		}
		if ran == 1 {
			close(returned)
		}
		return gossip.Ignore
	})
	boxes := subscribeAll(t, []*actors.Node{a}, "t")
	boxes = append(boxes, subscribeAll(t, []*actors.Node{b}, "t", slow)...)
	boxes = append(boxes, subscribeAll(t, []*actors.Node{c}, "t")...)
	waitMeshes(t, nw.Nodes, "t", 1)

	published := time.Now()
	id := publish(t, a, "t", "slow", false)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the validator did not return: its context never ended")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		st, err := b.GossipStats(ctxTimeout(t, 5*time.Second))
		return err == nil && st.Router.Ignored >= 1
	}, "b counted the message as ignored")
	elapsed := time.Since(published)
	mu.Lock()
	if !errors.Is(ctxErr, context.DeadlineExceeded) || budget < 0 || budget > timeout {
		t.Errorf("validator held %v, its context had %v left when it started (-1: no deadline) and ended with %v; want the %v ValidationTimeout",
			held, budget, ctxErr, timeout)
	}
	mu.Unlock()
	if elapsed < timeout {
		t.Errorf("message ignored %v after publication, before the %v ValidationTimeout", elapsed, timeout)
	}

	// b relays in order: once c has a later message, b would have relayed the slow one before it.
	marker := publish(t, a, "t", "marker", false)
	testkit.WaitFor(t, 10*time.Second, func() bool { return boxes[2].times(marker) == 1 }, "c delivered the marker")
	if boxes[0].times(id) != 1 {
		t.Errorf("the publisher delivered its message %d times, want once", boxes[0].times(id))
	}
	if got := boxes[1].times(id); got != 0 {
		t.Errorf("b delivered the message its validator timed out on %d times", got)
	}
	if got := boxes[2].times(id); got != 0 {
		t.Errorf("c delivered the message b ignored %d times: it was relayed", got)
	}
	// b relays the marker as it hands it to its handler's goroutine, so c may have it before b's handler ran.
	testkit.WaitFor(t, 10*time.Second, func() bool { return boxes[1].times(marker) == 1 }, "b delivered the marker its validator accepted")
	st, err := b.GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Counted as timed out too, whether the validator's deadline or the heartbeat's expiry came first (stop 54:
	// the validator's, which nearly always comes first, counted only in Ignored).
	if r := st.Router; r.Ignored != 1 || r.Rejected != 0 || r.Delivered != 1 || r.TimedOut != 1 {
		t.Errorf("b's stats: ignored %d (want 1), timed out %d (want 1), rejected %d (want 0), delivered %d (want 1)", r.Ignored, r.TimedOut, r.Rejected, r.Delivered)
	}
	if !b.Connected(a.ID()) || len(b.Bans()) != 0 {
		t.Error("an ignored message penalised its sender")
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 1 {
		t.Errorf("the validator held %d messages, want 1", ran)
	}
}

// TestGossipLateSubscriberJoinsMesh: a node that joins a topic grafts the subscribed peers it knows; its GRAFT
// must not be refused because the peer has not yet heard of its subscription (a GRAFT from a peer not known as
// subscribed is answered with a full prune and a PruneBackoff on both sides, which left the node out of the mesh
// for a minute while the relay sent the Join's GRAFTs before the subscription announcement).
func TestGossipLateSubscriberJoinsMesh(t *testing.T) {
	// 1 - 0 - 2: 1 and 2 subscribe first; 0 subscribes once it knows both are subscribed, so its Join grafts them.
	nw, _, _ := memGossipNetwork(t, 3, [][2]int{{0, 1}, {0, 2}}, nil)
	late := nw.Nodes[0]
	subscribeAll(t, nw.Nodes[1:], "t")
	if err := late.WaitTopicPeers(ctxTimeout(t, 10*time.Second), "t", 2); err != nil {
		t.Fatal(err)
	}
	subscribeAll(t, []*actors.Node{late}, "t")
	// Within 20 heartbeats, the late subscriber is in the mesh of both its peers and they are in its mesh.
	inMesh := func(node *actors.Node, id session.NodeID) bool {
		info, err := node.Topic(ctxTimeout(t, 5*time.Second), "t")
		return err == nil && slices.Contains(slices.Concat(info.Eager, info.Lazy), id)
	}
	err := testkit.Poll(context.Background(), 2*time.Second, func() bool {
		for _, peer := range nw.Nodes[1:] {
			if !inMesh(late, peer.ID()) || !inMesh(peer, late.ID()) {
				return false
			}
		}
		return true
	})
	if err != nil {
		info, _ := late.Topic(ctxTimeout(t, 5*time.Second), "t")
		st, _ := late.GossipStats(ctxTimeout(t, 5*time.Second))
		t.Fatalf("the late subscriber has %d eager and %d lazy links to its %d topic peers after 20 heartbeats; it sent %d grafts and received %d prunes",
			len(info.Eager), len(info.Lazy), len(info.Peers), st.Router.GraftsSent, st.Router.PrunesReceived)
	}
}

func TestGossipKilledNodeRestartsAndReceivesAgain(t *testing.T) {
	mem := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: time.Millisecond}, Seed: 3})
	const n = 8
	nw := testkit.NewNetwork(t, n, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Transport = mem.NewTransport()
		cfg.DisableDiscovery = true
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 50*time.Millisecond, 300*time.Millisecond, 1000
		fastGossip(cfg)
	}))
	nw.ConnectAll(testkit.Ring(n))
	boxes := subscribeAll(t, nw.Nodes, "t")
	waitMeshes(t, nw.Nodes, "t", 2)

	const victim = 3
	id := nw.Nodes[victim].ID()
	nw.Kill(victim)
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return !nw.Nodes[victim-1].Connected(id) && !nw.Nodes[victim+1].Connected(id)
	}, "the neighbours saw the victim die")
	during, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("while down"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		for i, b := range boxes {
			if i != victim && b.times(during) != 1 {
				return false
			}
		}
		return true
	}, "the ring, cut at the victim, still delivered to everyone else")

	nw.Restart(victim)
	if nw.Nodes[victim].ID() != id {
		t.Fatal("the restarted node has another identity")
	}
	// Node victim-1 dialed the victim and keeps it: it redials the same address and finds the same identity.
	testkit.WaitFor(t, 10*time.Second, func() bool { return nw.Nodes[victim-1].Connected(id) },
		"the neighbour that keeps the victim redialed it")
	box := newInbox()
	if _, err := nw.Nodes[victim].Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	waitMeshes(t, []*actors.Node{nw.Nodes[victim]}, "t", 1)
	after, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("after restart"))
	if err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(context.Background(), 10*time.Second, func() bool { return box.times(after) == 1 }); err != nil {
		for _, i := range []int{victim - 1, victim, victim + 1} {
			info, _ := nw.Nodes[i].Topic(ctxTimeout(t, time.Second), "t")
			st, _ := nw.Nodes[i].GossipStats(ctxTimeout(t, time.Second))
			t.Logf("node %d: peers %d eager %d lazy %d tree root %s parent %s dist %d links %d stats %+v peers %d", i,
				len(info.Peers), len(info.Eager), len(info.Lazy), info.Root.Short(), info.Parent.Short(), info.Dist,
				len(info.TreeLinks), st.Router, st.Peers)
			t.Logf("node %d: send failures %d malformed %d rate limited %d", i, st.SendFailures, st.Malformed, st.RateLimited)
		}
		t.Fatal("the restarted node did not get the next message")
	}
	if box.times(during) != 0 && box.times(during) != 1 {
		t.Fatalf("the message published while down was delivered %d times", box.times(during))
	}
}
