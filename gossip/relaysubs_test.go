package gossip

import (
	"fmt"
	"testing"

	"github.com/actormesh/actormesh/messages"
)

// The subscriptions kept for a rate-limited peer are at most twice MaxPeerTopics topics in all, however many RPCs
// they come in; a topic kept already takes the peer's latest word.
func TestDeferredSubscriptionsAreBoundedAcrossRPCs(t *testing.T) {
	a := &relayActor{cfg: DefaultRelayConfig()}
	limit := 2 * a.cfg.Router.MaxPeerTopics
	rpc := func(from, n int, subscribe bool) *messages.GossipRPC {
		r := &messages.GossipRPC{}
		for i := from; i < from+n; i++ {
			r.Subscriptions = append(r.Subscriptions, &messages.GossipSubscription{Topic: fmt.Sprintf("t%d", i), Subscribe: subscribe})
		}
		return r
	}
	a.deferSubscriptions(nid(1), rpc(0, limit-1, true))
	a.deferSubscriptions(nid(1), rpc(limit-1, 3, true)) // one more fits, two do not
	a.deferSubscriptions(nid(1), rpc(0, 1, false))      // kept already: its latest word
	d := a.deferred[nid(1)]
	if len(d.topics) != limit || d.topics["t0"] || !d.topics[fmt.Sprintf("t%d", limit-1)] {
		t.Fatalf("%d topics kept (t0 subscribed %v), want %d with t0 left", len(d.topics), d.topics["t0"], limit)
	}
}
