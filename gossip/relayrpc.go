package gossip

// A peer's RPCs: its hello and subscriptions, its control within its control budget, its messages within its
// message rate, and the penalties of what it sent wrong.

import (
	"fmt"
	"slices"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// handleRPC handles a peer's RPC. It reads the time itself (now), and is called directly by receive: the relay
// goroutine's deepest path (a signature check under it) sits near 16 KiB of stack, and a wrapper passing the time
// took it past, so that Go kept 32 KiB for each relay (node sim, N = 200: goroutine stacks 20.5 -> 23.6 MiB).
func (a *relayActor) handleRPC(from session.NodeID, rpc *messages.GossipRPC) {
	now := a.now()
	helloSent, known := a.peers[from]
	if !known {
		// A peer that upgraded a transient connection to us, or a connection the event has not reached us for.
		if !a.addPeer(from) {
			return
		}
		a.net.Retain(from)
	}
	// Subscriptions and control draw on the peer's control budget (controlCost), whatever messages ride with them
	// (each of those pays a token of the message rate): charged only when an RPC carried nothing else, they were
	// free with a stale message attached; charged a token of the message rate per RPC, a peer's 2000 RPCs a second
	// of the largest tree reports held the relay 230 ms a second. Control refused is dropped (the heartbeats retry
	// what matters of it); subscriptions are state, sent once, and are deferred instead (deferSubscriptions), as
	// are those of the peer's RPCs refused after them, until the next heartbeat or the peer's next RPC the budget
	// lets through, which applies them first, to keep their order.
	if cost := controlCost(rpc, a.cfg.Router.MaxIHaveLength, a.cfg.Router.MaxPeerTopics); cost > 0 {
		allowed := a.control.AllowN(from, cost, now)
		if !allowed {
			a.stats.RateLimitedControl++
		}
		// The topics are checked once the budget paid for the RPC, and only those the relay reads: checked first,
		// all of them, an RPC of 8192 subscriptions or messages cost ~8 µs unpaid (~20 ms a second at 2000 RPCs).
		if !a.topicsFit(rpc, allowed) {
			a.rejectLongTopic(from)
			return
		}
		if allowed && a.deferred[from] != nil {
			// What waits of the peer's subscriptions goes first: this RPC's control (the GRAFT of a topic it
			// joined in a deferred subscription) was pruned as of a peer not subscribed (a review's finding).
			a.applyDeferredOf(now, from)
			helloSent = a.peers[from]
		}
		switch {
		case !rpc.Hello && len(rpc.Subscriptions) == 0:
		case allowed:
			a.handleSubscriptions(now, from, rpc, helloSent)
		default:
			a.deferSubscriptions(from, rpc)
		}
		if allowed && rpc.Control != nil {
			// The beacon signature checks its tree reports call for are paid after the fact, as far as the budget
			// past its reserve holds (beaconCheckFunds): the others wait for a later report.
			// (The funds are read again after rather than kept: the budget is untouched meanwhile, and this frame is
			// on the deepest path.)
			left := beaconCheckFunds(a.control.Tokens(from, now), a.cfg.PeerControlBurst)
			a.apply(a.router.HandleControlPaid(now, from, controlFromWire(rpc.Control, a.cfg.Router.MaxIHaveLength,
				a.cfg.Router.MaxPeerTopics), &left))
			if spent := beaconCheckFunds(a.control.Tokens(from, now), a.cfg.PeerControlBurst) - left; spent > 0 {
				a.control.AllowN(from, spent, now)
			}
		}
	}
	for i, wm := range rpc.Messages {
		if !a.limiter.Allow(from, now) {
			// The rest too, unseen: at the same instant the peer's rate refills nothing. Refused one at a time,
			// a peer past its rate held the relay ~400 µs per RPC of 8192 empty messages, for no token (until
			// stop 58).
			a.stats.RateLimited += uint64(len(rpc.Messages) - i)
			return
		}
		if len(wm.Topic) > a.cfg.Router.MaxTopicLength { // the rest of the RPC unread, as malformed
			a.rejectLongTopic(from)
			return
		}
		a.handleMessage(now, from, wm)
	}
}

// rejectLongTopic counts and penalises a peer's RPC that names a topic over MaxTopicLength: what of it comes after
// the topic is dropped.
func (a *relayActor) rejectLongTopic(from session.NodeID) {
	a.stats.Malformed++
	a.penalize(a.router.PenalizePeer(from), ErrTopicTooLong.Error())
}

// handleSubscriptions applies the peer's hello and subscriptions an RPC carries. Of its first twice MaxPeerTopics
// entries (the Router tracks MaxPeerTopics topics of a peer, and an RPC may leave as many as it joins) each is
// applied; of those after, only those of topics the node joined, the others being left unread (a map lookup each;
// the Router remembers that the peer has some, MissedSubscriptions). The node's topics are seen wherever the peer
// lists them: until stop 58 only the first twice MaxPeerTopics entries were read, and a peer in more topics, whose
// hello lists them sorted, was invisible to the node in its later ones.
func (a *relayActor) handleSubscriptions(now time.Time, from session.NodeID, rpc *messages.GossipRPC, helloSent bool) {
	subs, unread := a.readSubscriptions(rpc.Subscriptions)
	a.router.MissedSubscriptions(from, unread)
	if rpc.Hello {
		listed := make(map[string]bool, len(subs))
		for _, s := range subs {
			listed[s.Topic] = s.Subscribe
		}
		for _, t := range a.router.PeerTopics(from) {
			if !listed[t] {
				a.apply(a.router.PeerUnsubscribed(now, from, t))
			}
		}
	}
	for _, s := range subs {
		if !s.Subscribe {
			a.apply(a.router.PeerUnsubscribed(now, from, s.Topic))
		} else if err := a.router.PeerSubscribed(from, s.Topic); err != nil {
			a.log.Debug().Err(err).Str("peer", from.Short()).Str("topic", s.Topic).Msg("peer subscription not tracked")
		}
	}
	switch {
	case rpc.Hello && !helloSent:
		a.sendHello(from)
	case rpc.Hello && len(a.subs) > 0:
		// The peer (re)started gossip with us after our hello, which it may never have seen (it restarted, or
		// forgot us with a closed duplicate connection): our subscriptions again, in a message that asks no reply,
		// once per heartbeat at most.
		if _, done := a.echoed[from]; !done {
			a.echoed[from] = false
			a.sendRPC(from, a.subscriptions(), true)
		} else {
			a.echoed[from] = true
		}
	}
	if rpc.Hello || len(subs) > 0 {
		// A node that topic discovery connected to may have left the topic since it registered, or left it now.
		a.apply(a.router.PeerUpdated(from))
	}
}

// readSubscriptions returns the entries of subs that handleSubscriptions reads: the first twice MaxPeerTopics,
// and after them up to MaxPeerTopics of the topics the node joined (each once in an honest peer's RPC; controlCost
// charges them as the first ones); unread counts the subscriptions it left out (not the unsubscriptions). The
// entries are subs itself when it reads them all.
func (a *relayActor) readSubscriptions(subs []*messages.GossipSubscription) (read []*messages.GossipSubscription, unread int) {
	limit := 2 * a.cfg.Router.MaxPeerTopics
	if len(subs) <= limit {
		return subs, 0
	}
	read = subs[:limit:limit]
	for _, s := range subs[limit:] {
		if _, joined := a.subs[s.Topic]; joined && len(read) < limit+a.cfg.Router.MaxPeerTopics {
			read = append(read, s)
		} else if s.Subscribe {
			unread++
		}
	}
	return read, unread
}

// topicsFit tells whether every topic the relay reads of rpc's subscriptions and control is within
// MaxTopicLength (its messages' are checked one by one, each after its token of the message rate): with its
// control budget allowed, all its subscriptions (each paid for, controlCost) and the entries of its control that
// controlFromWire reads; otherwise only the subscriptions deferSubscriptions keeps, its control being dropped. The
// subscriptions read past those are looked up among the node's topics only, each within MaxTopicLength.
func (a *relayActor) topicsFit(rpc *messages.GossipRPC, allowed bool) bool {
	max, n := a.cfg.Router.MaxTopicLength, a.cfg.Router.MaxPeerTopics
	long := func(topic string) bool { return len(topic) > max }
	subs := rpc.Subscriptions
	if !allowed {
		subs = subs[:min(len(subs), 2*n)]
	}
	if slices.ContainsFunc(subs, func(s *messages.GossipSubscription) bool { return long(s.Topic) }) {
		return false
	}
	c := rpc.Control
	return !allowed || c == nil ||
		!slices.ContainsFunc(c.Ihave[:min(len(c.Ihave), n)], func(ih *messages.GossipIHave) bool { return long(ih.Topic) }) &&
			!slices.ContainsFunc(c.Graft[:min(len(c.Graft), n)], long) &&
			!slices.ContainsFunc(c.Prune[:min(len(c.Prune), n)], func(p *messages.GossipPrune) bool { return long(p.Topic) }) &&
			!slices.ContainsFunc(c.Tree[:min(len(c.Tree), n)], func(t *messages.GossipTree) bool { return long(t.Topic) })
}

// handleMessage handles a message of a peer's RPC that its rate let through.
func (a *relayActor) handleMessage(now time.Time, from session.NodeID, wm *messages.GossipMessage) {
	m, err := messageFromWire(wm)
	if err == nil && len(m.Data) > a.cfg.MaxMessageSize {
		err = fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(m.Data), a.cfg.MaxMessageSize)
	}
	if err != nil {
		a.stats.Malformed++
		a.penalize(a.router.PenalizePeer(from), err.Error())
		return
	}
	// A stale message (HandleMessage drops it) is not worth its signature check.
	if a.cfg.VerifySignatures && a.router.Takes(from, m.Topic) && !a.router.Seen(a.router.MessageID(m)) &&
		a.router.Timely(now, m) && !a.verify(m) {
		// Checked before the Router records the id as seen, so a forged copy cannot suppress the real message.
		a.stats.BadSignatures++
		a.penalize(a.router.PenalizePeer(from), "bad signature")
		return
	}
	out, status := a.router.HandleMessage(now, from, m)
	a.apply(out)
	if status != Pending {
		return
	}
	validators := a.validatorsOf(m.Topic)
	if len(validators) == 0 {
		a.apply(a.router.Validated(now, m.ID, Accept))
		return
	}
	d := a.delivery(m, now)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		verdict, timedOut := a.verdictOf(a.ctx, d, validators)
		a.root.Send(a.self, &validated{from: a, msg: m, verdict: verdict, timedOut: timedOut})
	}()
}

func (a *relayActor) penalize(p Penalty, why string) {
	ev := a.log.Debug()
	if p.Ban {
		ev = a.log.Warn()
	}
	ev.Str("peer", p.Peer.Short()).Int("count", p.Count).Str("reason", why).Msg("gossip: invalid message from peer")
	if p.Ban {
		a.stats.Banned++
		if err := a.net.Ban(p.Peer, a.cfg.PenaltyBan, fmt.Sprintf("gossip: %d invalid messages", p.Count)); err != nil {
			a.log.Warn().Err(err).Str("peer", p.Peer.Short()).Msg("gossip: ban failed")
		}
	}
}
