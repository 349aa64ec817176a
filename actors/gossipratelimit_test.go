package actors_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
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
