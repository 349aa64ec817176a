package gossip

import (
	"maps"
	"slices"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// deferredSubs is what a peer's RPCs said of its subscriptions while its control budget refused them: a peer sends
// its hello and each subscription change once, so the relay applies them at its next heartbeat, or before the
// peer's next RPC the budget lets through, rather than drop them.
// Dropped, a subscription made while the peer was over its limit (after a burst of messages, say) was lost for
// good: the relay took the peer for not subscribed, answered its GRAFTs with PRUNE and never sent it the topic's
// messages, with only RateLimited to show (an audit's finding).
type deferredSubs struct {
	hello  bool            // a hello is among them: the list is whole, and topics not in it are left
	topics map[string]bool // topic → subscribed: the peer's latest word on each
}

// deferSubscriptions keeps the hello and subscriptions of rpc for the next heartbeat (applyDeferred), or the peer's
// next RPC its control budget lets through (applyDeferredOf), after those kept already. A hello voids what came before
// it, being the whole list. At most twice MaxPeerTopics topics are kept per peer, as handleSubscriptions reads.
func (a *relayActor) deferSubscriptions(from session.NodeID, rpc *messages.GossipRPC) {
	if a.deferred == nil {
		a.deferred = make(map[session.NodeID]*deferredSubs)
	}
	d := a.deferred[from]
	switch {
	case d == nil:
		d = &deferredSubs{hello: rpc.Hello, topics: make(map[string]bool)}
		a.deferred[from] = d
	case rpc.Hello: // a hello voids what came before it; the map is kept, as a peer over its budget may send many
		d.hello = true
		clear(d.topics)
	}
	limit := 2 * a.cfg.Router.MaxPeerTopics
	for _, s := range rpc.Subscriptions[:min(len(rpc.Subscriptions), limit)] {
		if _, ok := d.topics[s.Topic]; ok || len(d.topics) < limit {
			d.topics[s.Topic] = s.Subscribe
		}
	}
}

// applyDeferred applies the subscriptions the peers' control budgets deferred, at the heartbeat.
func (a *relayActor) applyDeferred(now time.Time) {
	for id := range a.deferred {
		a.applyDeferredOf(now, id)
	}
}

// applyDeferredOf applies what waits of id's subscriptions: at the heartbeat, or before an RPC of the peer that
// its control budget lets through, whose control may need them (a GRAFT of a topic it joined).
func (a *relayActor) applyDeferredOf(now time.Time, id session.NodeID) {
	d := a.deferred[id]
	delete(a.deferred, id)
	helloSent, known := a.peers[id]
	if d == nil || !known {
		return
	}
	rpc := &messages.GossipRPC{Hello: d.hello}
	for _, t := range slices.Sorted(maps.Keys(d.topics)) {
		rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: t, Subscribe: d.topics[t]})
	}
	a.handleSubscriptions(now, id, rpc, helloSent)
}
