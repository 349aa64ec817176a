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
	// unread tells that an RPC listed more than twice MaxPeerTopics subscriptions: those after are not kept (looking
	// them up cost the relay 40 µs an RPC of the longest, which the budget refused and so did not charge), and the
	// peer is asked for its subscriptions again once the others are applied (the node's hello, which it answers).
	unread bool
}

// deferSubscriptions keeps the hello and subscriptions of rpc for the next heartbeat (applyDeferred), or the peer's
// next RPC its control budget lets through (applyDeferredOf), after those kept already. A hello voids what came before
// it, being the whole list. Of an RPC, the first twice MaxPeerTopics entries are kept (see deferredSubs.unread), at
// most twice MaxPeerTopics topics per peer over all its RPCs, and the node's joined topics besides (MaxPeerTopics at
// most); the peer's other subscriptions count as missed (Router.MissedSubscriptions).
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
		d.hello, d.unread = true, false
		clear(d.topics)
	}
	limit := 2 * a.cfg.Router.MaxPeerTopics
	subs, unread := rpc.Subscriptions, 0
	if len(subs) > limit {
		// The entries cut count as subscriptions left unread, unsubscriptions included: this RPC was not paid for,
		// and they are not looked at.
		subs, unread, d.unread = subs[:limit], len(subs)-limit, true
	}
	for _, s := range subs {
		_, kept := d.topics[s.Topic]
		if _, joined := a.subs[s.Topic]; kept || joined || len(d.topics) < limit {
			d.topics[s.Topic] = s.Subscribe
		} else if s.Subscribe {
			unread++
		}
	}
	a.router.MissedSubscriptions(from, unread)
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
	if d.unread {
		// Its hello is asked for again at the next heartbeat (flushHellos), not now: this runs before each RPC of
		// the peer's its budget lets through, and a peer pairing a refused long list with a cheap RPC had our whole
		// topic list sent for every pair, 1000 a second (an audit's finding).
		if a.helloAgain == nil {
			a.helloAgain = make(map[session.NodeID]struct{})
		}
		a.helloAgain[id] = struct{}{}
	}
}

// flushHellos sends, at the heartbeat, the hellos applyDeferredOf asked for since the last one, to the peers still
// known that the heartbeat's Output.Hello did not reach already: at most one hello a peer a heartbeat.
func (a *relayActor) flushHellos() {
	for id := range a.helloAgain {
		if a.known(id) {
			a.sendHello(id)
		}
	}
	clear(a.helloAgain)
}
