package gossip

import "github.com/actormesh/actormesh/session"

// releaseState is where a peer stands in releasing connections topic discovery made (Output.Release).
type releaseState uint8

const (
	notReleased releaseState = iota // shares a joined topic, or was never released
	releaseDue                      // released at the next heartbeat unless it shares a joined topic by then
	released                        // released (Output.Release): kept again once it shares a joined topic (Output.Keep)
)

// PeerUpdated is called once a peer's subscriptions changed (the subscriptions of an RPC, its hello's included). A
// peer that shares no topic the node joined is released at the next heartbeat (Output.Release) unless it shares one
// by then: a peer that leaves a topic and joins it again, or switches topics, within a heartbeat, and an RPC that
// lists a topic's unsubscription before another's subscription, release nothing. A released peer that shares a
// joined topic again is kept again at once (Output.Keep): its connection is in use again.
func (r *Router) PeerUpdated(id session.NodeID) Output {
	var b builder
	p := r.peers[id]
	if p == nil {
		return b.result()
	}
	p.heard = true
	if r.SharesJoinedTopic(id) {
		r.keepIfShared(&b, id, p)
	} else {
		r.releaseUnlessShared(id, p)
	}
	return b.result()
}

// SharesJoinedTopic tells whether a peer is subscribed to a topic the node joined.
func (r *Router) SharesJoinedTopic(id session.NodeID) bool {
	p := r.peers[id]
	if p == nil {
		return false
	}
	for name := range p.topics {
		if t := r.topics[name]; t != nil && t.joined {
			return true
		}
	}
	return false
}

// releaseUnlessShared lists p for release at the next heartbeat.
func (r *Router) releaseUnlessShared(id session.NodeID, p *peer) {
	if p == nil || p.release != notReleased || r.SharesJoinedTopic(id) {
		return
	}
	p.release = releaseDue
	if !p.listed {
		p.listed = true
		r.releasing = append(r.releasing, id)
	}
}

// keepIfShared keeps a released peer again, or takes a due one off, once it shares a joined topic.
func (r *Router) keepIfShared(b *builder, id session.NodeID, p *peer) {
	if p == nil || p.release == notReleased || !r.SharesJoinedTopic(id) {
		return
	}
	if p.release == released {
		b.out.Keep = append(b.out.Keep, id)
	}
	p.release = notReleased // a due one stays listed (peer.listed), and is skipped there
}

// silentReleaseBeats is how many heartbeats a peer may stay silent (no hello) before it is released: a node found
// by topic discovery that accepts the connection and says nothing would otherwise hold it, and an outbound slot,
// for good. A hello comes within a heartbeat of the connection; one that comes later keeps the peer again.
const silentReleaseBeats = 3

// releaseSilent lists for release, on a heartbeat, a peer that has not said hello within silentReleaseBeats.
func (r *Router) releaseSilent(id session.NodeID, p *peer) {
	if !p.heard && r.beats-p.added >= silentReleaseBeats {
		p.heard = true // once: its hello, should it come, is judged as any other (PeerUpdated)
		r.releaseUnlessShared(id, p)
	}
}

// releaseDue releases, on a heartbeat, the listed peers that still share no joined topic.
func (r *Router) releaseDue(b *builder) {
	for _, id := range r.releasing {
		p := r.peers[id]
		if p == nil {
			continue // gone
		}
		p.listed = false
		if p.release != releaseDue {
			continue // kept by now
		}
		if r.SharesJoinedTopic(id) {
			p.release = notReleased
			continue
		}
		p.release = released
		b.out.Release = append(b.out.Release, id)
	}
	clear(r.releasing)
	r.releasing = r.releasing[:0]
}
