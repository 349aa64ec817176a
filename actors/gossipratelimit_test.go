package actors_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// TestASubscriptionOverThePeersRateLimitIsNotLost: a subscription a peer announces while it is over its per-peer
// rate limit (here right after a burst of messages on another topic) is applied at the next heartbeat rather than
// dropped with the rest of the RPC. Dropped, it was lost for good, since a peer announces each change once: the
// relay took the peer for not subscribed, pruned its GRAFTs and never sent it the topic's messages, with only
// RateLimited to show (an audit's finding: S - P - Q, S joined topic b after a burst on a, and got nothing of b).
func TestASubscriptionOverThePeersRateLimitIsNotLost(t *testing.T) {
	nw := gossipNetwork(t, 3, [][2]int{{0, 1}, {1, 2}}, func(_ int, cfg *actors.Config) {
		cfg.Gossip.PeerMessageRate, cfg.Gossip.PeerMessageBurst = 20, 20
	})
	s, p, q := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	subscribeAll(t, []*actors.Node{s, p}, "a")
	subscribeAll(t, []*actors.Node{p, q}, "b")
	waitMeshes(t, []*actors.Node{s, p}, "a", 1)
	waitMeshes(t, []*actors.Node{p, q}, "b", 1)
	for k := range 60 { // over P's rate for S: part of it is dropped and counted, as documented
		if _, err := s.Publish(ctxTimeout(t, 5*time.Second), "a", wrapperspb.String(fmt.Sprint("burst ", k))); err != nil {
			t.Fatal(err)
		}
	}
	sb := subscribeAll(t, []*actors.Node{s}, "b")[0]
	testkit.WaitFor(t, 10*time.Second, func() bool {
		info, err := p.Topic(ctxTimeout(t, 5*time.Second), "b")
		return err == nil && slices.Contains(info.Peers, s.ID())
	}, "P to learn that S joined topic b")
	waitMeshes(t, []*actors.Node{s}, "b", 1)
	id, err := q.Publish(ctxTimeout(t, 5*time.Second), "b", wrapperspb.String("after"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return sb.times(id) == 1 }, "S to receive Q's message on b")
	if st, err := p.GossipStats(ctxTimeout(t, 5*time.Second)); err != nil || st.RateLimited == 0 {
		t.Fatalf("P rate-limited nothing of S's burst (%v): the test did not exercise the limit", err)
	}
}

// TestControlFloodsStayWithinTheControlBudget: four peers flooding a node with control as fast as their connections
// take it (IWANTs of 500 ids, 16.6 units of the control budget each) get no more of it processed than their
// budgets allow, the rest refused and counted, and an honest publisher's messages still reach the node. Before the
// control budget, control drew one token per RPC from the message rate (2000/s): all of it was processed, and
// four such peers sending the largest tree reports saturated the relay.
func TestControlFloodsStayWithinTheControlBudget(t *testing.T) {
	const (
		hostiles = 4
		rpcs     = 300 // per hostile peer
		ids      = 500 // per IWANT: MaxIHaveLength, all read
		rate     = 500
		burst    = 1000
	)
	edges := [][2]int{{1, 0}}
	for h := range hostiles {
		edges = append(edges, [2]int{2 + h, 0})
	}
	nw := gossipNetwork(t, 2+hostiles, edges, func(_ int, cfg *actors.Config) {
		cfg.Gossip.PeerControlRate, cfg.Gossip.PeerControlBurst = rate, burst
	})
	v, p := nw.Nodes[0], nw.Nodes[1]
	boxes := subscribeAll(t, []*actors.Node{v, p}, "blocks")
	waitMeshes(t, []*actors.Node{v, p}, "blocks", 1)
	flood := &messages.GossipRPC{Control: &messages.GossipControl{}}
	for i := range ids {
		id := make([]byte, gossip.MsgIDSize)
		id[0], id[1], id[2] = byte(i), byte(i>>8), 0xf1
		flood.Control.Iwant = append(flood.Control.Iwant, id)
	}
	before, err := v.GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, h := range nw.Nodes[2:] {
		wg.Go(func() {
			for range rpcs {
				if err := h.Send(ctxTimeout(t, 10*time.Second), v.ID(), gossip.Protocol, flood); err != nil {
					t.Errorf("flood: %v", err)
					return
				}
			}
		})
	}
	var published []gossip.MsgID
	for k := range 10 { // while the floods go on
		id, err := p.Publish(ctxTimeout(t, 5*time.Second), "blocks", wrapperspb.String(fmt.Sprint("honest ", k)))
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, id)
	}
	wg.Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return !slices.ContainsFunc(published, func(id gossip.MsgID) bool { return boxes[0].times(id) != 1 })
	}, "the node to receive the honest publisher's messages once each")
	var after gossip.RelayStats
	testkit.WaitFor(t, 10*time.Second, func() bool { // every flood RPC handled: taken or refused
		after, err = v.GossipStats(ctxTimeout(t, 5*time.Second))
		taken := (after.Router.IWantReceived - before.Router.IWantReceived) / ids
		return err == nil && taken+after.RateLimitedControl-before.RateLimitedControl >= hostiles*rpcs
	}, "the node to handle the floods")
	elapsed := time.Since(start).Seconds()
	taken := (after.Router.IWantReceived - before.Router.IWantReceived) / ids
	cost := 1 + float64(ids)/32
	limit := hostiles * (burst + rate*elapsed) / cost
	t.Logf("%d flood RPCs in %.1f s: %d taken (budget %.0f), %d refused", hostiles*rpcs, elapsed, taken, limit,
		after.RateLimitedControl-before.RateLimitedControl)
	if float64(taken) > limit || after.RateLimitedControl == before.RateLimitedControl {
		t.Fatalf("%d flood RPCs taken, the budget allows %.0f; %d refused", taken, limit, after.RateLimitedControl-before.RateLimitedControl)
	}
}
