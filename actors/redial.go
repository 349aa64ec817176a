package actors

// Wanted peers: the redial backoff of the peers the node keeps, and the hold on those the application disconnected
// and on the node's own choices whose application disconnected the node.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// disconnectHold is how long the node itself (discovery, gossip's tree shortcuts) does not connect again to a
// peer the application disconnected, or to one of its own choices that disconnected the node at its application's
// request (chosenPeerLeft); at most maxHeld peers are held, the ones held longest giving way.
const (
	disconnectHold = 10 * time.Minute
	maxHeld        = 1024
)

// errHeld refuses the node's own dials to a peer the application disconnected (Node.Disconnect), or whose
// application disconnected the node (chosenPeerLeft).
var errHeld = errors.New("the application disconnected this peer, or the peer's application disconnected the node: the node does not connect to it again by itself for a while")

// redialDue fires when a wanted peer's backoff delay is over. Like the other timers' messages (slotDue, sweepDue)
// it names the instance that armed it: one that fired just before a restart reaches the next instance, which has
// timers of its own and ignores it.
type redialDue struct {
	id   session.NodeID
	from *peerManager
	// armed numbers the timer that fired among the peer's (wantedPeer.armed): a redialDue that was on its way
	// when its timer was stopped (the peer connected, or was let go and wanted again) is not for one armed since.
	armed uint64
}

// wantedPeer is a peer the node keeps connected. auto is set while only the node's own choices want it (its
// bootstrapper's dials, gossip's tree shortcuts), not the application.
type wantedPeer struct {
	addr    session.PeerAddr
	auto    bool
	up      bool // a connection to it came up since it was wanted
	backoff *session.Backoff
	timer   *time.Timer
	armed   uint64 // numbers timer among the peer manager's redial timers (redialDue.armed)
}

func (w *wantedPeer) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// redialResetAfter is how long a connection to a wanted peer must last for its redial backoff to start over. A
// connection the peer closes sooner counts as one more failure: a full peer that evicts the node's connection
// (see eviction.go) for a newcomer that it then evicts in turn would otherwise be redialed at once, again and
// again, by both of them, and a node wanted by more peers than it has slots would churn its connections for ever.
const redialResetAfter = 10 * time.Second

// unwant forgets a wanted peer, if it is one, and stops its redial timer.
func (m *peerManager) unwant(id session.NodeID) {
	if w, ok := m.wanted[id]; ok {
		w.stopTimer()
		delete(m.wanted, id)
	}
}

// chosenPeerLeft handles a connection to a wanted peer that the peer closed as full (TOO_MANY_PEERS: it refused the
// node or evicted it for a newcomer), as shutting down (SHUTDOWN) or at its application's request (REQUESTED,
// Node.Disconnect). A peer only the node's own choices want is no longer wanted: the bootstrapper tops up with
// another candidate, as go-ethereum's dialer and go-libp2p's do with a peer that left. Redialing a full peer
// instead evicted, at a full node, the newcomer that had just evicted this node's connection, which came back in
// turn: at N = 1000 a few well-known nodes evicted ~2000 connections a run that way, most of them ~0.15 s old. A
// peer that shut down was redialed up to RedialAttempts times for nothing, its outbound slot held meanwhile. A peer
// whose application dropped the node was connected again at once; it is held as well, as the local Disconnect
// holds (disconnectHold), so that neither the bootstrapper nor gossip's tree shortcuts nor topic discovery keep it
// again within minutes. (Until the idle sweep said NOT_NEEDED it said REQUESTED too, and a node that held every
// peer whose sweep had closed one found no topic peer; a peer of such an older build is still held that way.)
//
// NOT_NEEDED is routine and the peer is redialed as before. A connection the node keeps reaches the peer's sweep
// only while the peer holds its end as transient: the peer dialed it for a lookup and the node came to keep it,
// and then the node's relay greets the peer, whose relay keeps it (keepConn, gossip.Relay.Upgraded), unless that
// relay is full (Router.MaxPeers) or the sweep came first. The peer has not refused the node, and the redial is a
// dial with keep, which the peer holds as kept (TestAKeptConnectionThePeerSweptIsRedialed). The application's
// peers (Node.Connect with keep) are redialed whatever the reason, as go-ethereum does with its static peers. It
// reports whether the peer was let go.
func (m *peerManager) chosenPeerLeft(pc *peerConn) bool {
	w, ok := m.wanted[pc.id]
	if !ok || !w.auto || !pc.byRemote {
		return false
	}
	switch pc.reason {
	case messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS:
		m.n.log.Debug().Str("peer", pc.id.Short()).Msg("peer is full: not redialing it, the node picks another")
	case messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN:
		m.n.log.Debug().Str("peer", pc.id.Short()).Msg("peer left: not redialing it, the node picks another")
	case messages.DisconnectReason_DISCONNECT_REASON_REQUESTED:
		m.hold(pc.id, time.Now())
		m.n.log.Debug().Str("peer", pc.id.Short()).Dur("hold", disconnectHold).
			Msg("peer disconnected the node: not redialing it, the node picks another and leaves it alone")
	default:
		return false
	}
	m.unwant(pc.id)
	return true
}

// untriedCandidateFailed handles a failed dial to a wanted peer: a peer only the node's own choices want (its
// bootstrapper's candidates) that has not been reached since is no longer wanted, and the bootstrapper, which keeps
// a backoff of its own for the candidates that failed, picks another. Redialed, one step's failed candidates were
// each dialed up to RedialAttempts times more behind the bootstrapper's back, and those that came back pushed the
// node past its outbound target. It reports whether the peer was let go.
func (m *peerManager) untriedCandidateFailed(id session.NodeID) bool {
	w, ok := m.wanted[id]
	if !ok || !w.auto || w.up {
		return false
	}
	m.unwant(id)
	m.n.log.Debug().Str("peer", id.Short()).Msg("candidate unreachable: not redialing it, the node picks another")
	return true
}

// dialFailed follows up a failed dial to a wanted peer: the bootstrapper's untried candidate is let go
// (untriedCandidateFailed), any other is redialed with its backoff.
func (m *peerManager) dialFailed(id session.NodeID, cause error) {
	if !m.untriedCandidateFailed(id) {
		m.scheduleRedial(id, cause)
	}
}

// scheduleRedial arms the backoff timer of a wanted peer, or gives up on it when its attempts are spent.
func (m *peerManager) scheduleRedial(id session.NodeID, cause error) {
	w, ok := m.wanted[id]
	if !ok || w.timer != nil || m.ctx.Err() != nil {
		return
	}
	if _, connected := m.conns[id]; connected {
		return
	}
	d, ok := w.backoff.Next()
	if !ok {
		m.n.log.Warn().Str("peer", id.Short()).Int("attempts", w.backoff.Attempts()).Err(cause).Msg("giving up redialing peer")
		delete(m.wanted, id)
		return
	}
	m.n.log.Debug().Str("peer", id.Short()).Dur("in", d).Int("attempt", w.backoff.Attempts()).Err(cause).Msg("redial scheduled")
	m.armed++
	w.armed = m.armed
	self, root, due := m.self, m.root, &redialDue{id: id, from: m, armed: m.armed}
	w.timer = time.AfterFunc(d, func() { root.Send(self, due) })
}

// hold records that the application disconnected id at now, or that id, one of the node's own choices, disconnected
// the node at its application's request (chosenPeerLeft): the node does not connect to it again by itself for
// disconnectHold. Expired holds go first when the map is full, then the one that ends soonest.
func (m *peerManager) hold(id session.NodeID, now time.Time) {
	if _, ok := m.held[id]; !ok && len(m.held) >= maxHeld {
		maps.DeleteFunc(m.held, func(_ session.NodeID, until time.Time) bool { return !now.Before(until) })
		if len(m.held) >= maxHeld {
			var first session.NodeID
			var soonest time.Time
			for h, until := range m.held {
				if soonest.IsZero() || until.Before(soonest) {
					first, soonest = h, until
				}
			}
			delete(m.held, first)
		}
	}
	m.held[id] = now.Add(disconnectHold)
}

// isHeld tells whether id was held (hold) less than disconnectHold ago.
func (m *peerManager) isHeld(id session.NodeID, now time.Time) bool {
	until, ok := m.held[id]
	if ok && !now.Before(until) {
		delete(m.held, id)
		return false
	}
	return ok
}

// disconnect carries out Node.Disconnect: the peer is held (hold), no longer wanted, a dial to it in progress is
// closed as it comes up (undial), one waiting for an outbound slot fails, and its connection closes.
func (m *peerManager) disconnect(id session.NodeID) {
	m.hold(id, time.Now())
	if _, dialing := m.dialing[id]; dialing {
		m.undial[id] = struct{}{}
	}
	m.slotWait = slices.DeleteFunc(m.slotWait, func(w slotWaiter) bool {
		if w.req.addr.ID != id {
			return false
		}
		w.req.slotWaited.stop(time.Now())
		reply(w.req.reply, fmt.Errorf("%w: %s: disconnected (Node.Disconnect) while waiting for an outbound slot", ErrPeerGone, id.Short()))
		return true
	})
	m.unwant(id)
	if e, ok := m.conns[id]; ok {
		e.pc.kept.Store(false)
		e.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_REQUESTED, "disconnect requested")
	}
}
