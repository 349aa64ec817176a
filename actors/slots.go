package actors

// Connection slots: which connections count against MaxOutboundPeers and MaxInboundPeers, which may be closed to
// make room or when idle, and the dials waiting for a slot. The peer manager calls these from its Receive.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// outboundFull tells whether every outbound slot is taken by a connection or a dial in progress.
func (m *peerManager) outboundFull() bool {
	return m.count(true)+len(m.dialing) >= m.n.cfg.MaxOutboundPeers
}

func (m *peerManager) armSlotRetry() {
	if m.slotTimer != nil || len(m.slotWait) == 0 || m.ctx.Err() != nil {
		return
	}
	self, root := m.self, m.root
	m.slotTimer = time.AfterFunc(slotRetry, func() { root.Send(self, &slotDue{from: m}) })
}

// retrySlotWaiters dials, in arrival order, the waiting dials that now get a slot, and fails the ones whose
// deadline passed.
func (m *peerManager) retrySlotWaiters(ctx actor.Context) {
	now := time.Now()
	for len(m.slotWait) > 0 {
		w := m.slotWait[0]
		_, connected := m.conns[w.req.addr.ID]
		_, dialing := m.dialing[w.req.addr.ID]
		switch {
		case connected || dialing:
		case now.After(w.deadline):
			err := fmt.Errorf("%w: no outbound slot freed in time", ErrTooManyPeers)
			w.req.slotWaited.stop(now)
			reply(w.req.reply, err)
			m.slotWait = m.slotWait[1:]
			m.dialFailed(w.req.addr.ID, err) // a peer to keep is tried again, as after any failed dial
			continue
		case m.outboundFull() && !m.evictIdleOutbound():
			m.armSlotRetry()
			return
		}
		m.slotWait = m.slotWait[1:]
		w.req.slotWaited.stop(now)
		m.handling = w.req // off slotWait and not dialing yet: should dial panic, settleFailed answers it
		m.dial(ctx, w.req)
	}
}

// unusedGrace protects a transient connection that was just dialed and not used yet (its first request is on its
// way) from being closed to make room; minIdleForEviction protects one used lately, by either side: the peer may
// have a request of its own on the way.
const (
	unusedGrace        = time.Second
	minIdleForEviction = 100 * time.Millisecond
)

// transient tells whether a connection may be closed without loss: an outbound one the node does not keep, or an
// inbound one its dialer declared transient (and the node does not keep either), with no request of the node
// awaiting an answer on it, no reply the node owes on it (peerConn.owes) and nothing waiting to be written.
func transient(pc *peerConn) bool {
	return !keptConn(pc) && pc.inflight.Load() == 0 && pc.q.len() == 0 && !pc.owes()
}

// keptConn tells whether a connection is meant to last: kept by this node, inbound from a dialer that keeps it,
// or used by the peer for gossip.
func keptConn(pc *peerConn) bool {
	return pc.kept.Load() || pc.gossiping.Load() || (!pc.outbound && !pc.remoteTransient.Load())
}

// evictIdleOutbound closes the least recently active transient outbound connection (one opened for a lookup or an
// on-demand send), to free an outbound slot. It reports whether it freed one.
func (m *peerManager) evictIdleOutbound() bool { return m.evictIdle(true) }

// evictIdleInbound does the same for an inbound slot, among the connections their dialers declared transient.
func (m *peerManager) evictIdleInbound() bool { return m.evictIdle(false) }

func (m *peerManager) evictIdle(outbound bool) bool {
	now := time.Now()
	var victim *connEntry
	for _, e := range m.conns {
		if e.pc.outbound != outbound || !transient(e.pc) || e.pc.idleFor(now) < minIdleForEviction ||
			(!e.pc.used.Load() && now.Sub(e.pc.connectedAt) < unusedGrace) {
			continue
		}
		if victim == nil || e.pc.idleFor(now) > victim.pc.idleFor(now) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	victim.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "idle connection closed to make room")
	m.unregister(victim)
	return true
}

// armSweep arms the next sweep of transient connections: every half of the shorter idle timeout while a
// connection the node does not keep is open, otherwise every half TransientIdleTimeout. Most of the time a node has
// only kept connections, and a connection is kept or not from its registration on (it stops being kept only as it
// is closed, or as the relay releases one topic discovery made), so only a registration or a release, which bring
// the sweep forward (sweepSoon), can give the sweep work.
func (m *peerManager) armSweep(candidates bool) {
	if m.ctx.Err() != nil {
		return
	}
	self, root := m.self, m.root
	every := m.sweepEvery()
	if !candidates {
		every = max(every, m.n.cfg.TransientIdleTimeout/2)
	}
	m.sweepAt = time.Now().Add(every)
	if m.sweep != nil { // one chain of sweeps
		m.sweep.Stop()
	}
	m.sweep = time.AfterFunc(every, func() { root.Send(self, &sweepDue{from: m}) })
}

func (m *peerManager) sweepEvery() time.Duration {
	// At least minSweepEvery: a timeout of a nanosecond (positive, so valid) made the sweep re-arm itself at once,
	// for good, a core's worth of CPU on an idle node.
	return max(minSweepEvery, min(m.n.cfg.TransientIdleTimeout, m.n.cfg.DiscoveryIdleTimeout)/2)
}

// minSweepEvery is the shortest period of the sweep of idle connections.
const minSweepEvery = 10 * time.Millisecond

// sweepSoon brings the next sweep forward to the short period, for a connection just registered.
func (m *peerManager) sweepSoon() {
	if m.sweep == nil || time.Until(m.sweepAt) <= m.sweepEvery() {
		return
	}
	if m.sweep.Stop() { // else it fired: its sweepDue is on the way
		m.armSweep(true)
	}
}

// sweepTransient closes the transient connections idle for TransientIdleTimeout, or DiscoveryIdleTimeout for those
// the application did not use that are outbound (only discovery used them) or that the relay released (kept for a
// topic the peer no longer shares). Any other inbound one waits TransientIdleTimeout: its dialer, who knows what it
// is for, closes it first. The goodbye says NOT_NEEDED, a routine close: with REQUESTED, which an application's
// Disconnect says, the peer could not tell the two apart (see chosenPeerLeft).
// It reports whether a connection the node does not keep is still open.
func (m *peerManager) sweepTransient() (candidates bool) {
	now := time.Now()
	for _, e := range m.conns {
		if keptConn(e.pc) {
			continue
		}
		timeout := m.n.cfg.TransientIdleTimeout
		if (e.pc.outbound || e.pc.released) && !e.pc.appUsed.Load() {
			timeout = m.n.cfg.DiscoveryIdleTimeout
		}
		if transient(e.pc) && e.pc.idleFor(now) >= timeout {
			e.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED, "idle transient connection")
			m.unregister(e)
			continue
		}
		candidates = true
	}
	return candidates
}

// evictionCandidates lists the inbound connections eviction may close: those the node does not keep, older than
// InboundEvictionGrace, from an IP (a transport without IPs has no network groups to tell apart). Loopback ones are
// candidates too, under ExemptLoopbackThrottle as well: in a simulation on 127.0.0.1 they all fall in one group,
// and eviction still makes room for newcomers, as it would among real nodes.
func (m *peerManager) evictionCandidates() ([]evictCandidate, []*connEntry) {
	if m.n.cfg.DisableInboundEviction {
		return nil, nil
	}
	var cands []evictCandidate
	var entries []*connEntry
	now := time.Now()
	for _, e := range m.conns {
		if e.pc.outbound || e.pc.kept.Load() || now.Sub(e.pc.connectedAt) < m.n.cfg.InboundEvictionGrace {
			continue
		}
		ip := addrIP(e.pc.sc.RemoteAddr())
		if !ip.IsValid() {
			continue
		}
		cands = append(cands, evictCandidate{group: netGroup(ip), connectedAt: e.pc.connectedAt,
			lastRelayed: unixNanoTime(e.pc.lastRelayed.Load())})
		entries = append(entries, e)
	}
	return cands, entries
}

// canEvictInbound tells whether a newcomer could take an inbound slot from a connection the node values less
// (see eviction.go). Before the handshake the node only asks; it evicts once the newcomer has proved an identity
// and said it means to stay.
func (m *peerManager) canEvictInbound() bool {
	c, _ := m.evictionCandidates()
	return chooseEviction(c, m.evictSeed) >= 0
}

// evictInbound closes the inbound connection eviction chooses to make room for newcomer, flushing what is queued
// on it first. It reports whether it freed a slot.
func (m *peerManager) evictInbound(newcomer session.NodeID) bool {
	c, entries := m.evictionCandidates()
	i := chooseEviction(c, m.evictSeed)
	if i < 0 {
		return false
	}
	victim := entries[i]
	m.n.log.Info().Str("peer", victim.pc.id.Short()).Str("group", c[i].group.String()).
		Str("newcomer", newcomer.Short()).Msg("inbound connection evicted to make room")
	victim.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "evicted to make room for a newcomer")
	m.unregister(victim)
	m.n.stats.inboundEvicted.Add(1)
	return true
}

// slotWaitKey is the context key of contextWithSlotWait.
type slotWaitKey struct{}

// contextWithSlotWait returns ctx carrying waited: a dial made under it (connect) records in waited the time it
// waits for a free outbound slot, this node's own limit, which discovery does not hold against the peer
// (routing.LocalWaitError).
func contextWithSlotWait(ctx context.Context, waited *slotWait) context.Context {
	return context.WithValue(ctx, slotWaitKey{}, waited)
}

// slotWaitFrom returns the slot-wait record ctx carries (contextWithSlotWait), nil if none.
func slotWaitFrom(ctx context.Context) *slotWait {
	w, _ := ctx.Value(slotWaitKey{}).(*slotWait)
	return w
}

// slotWait is how long a caller's dials waited for a free outbound slot: the waits that ended and the one in
// progress, which the caller may have given up on (its context ended first: on a loaded host the peer manager
// answers a waiter late, past its caller's deadline). Counting only the waits that ended with a slot, a liveness
// check whose time ran out in the wait failed as a timeout held against the peer. Safe for concurrent use; the
// methods of a nil *slotWait do nothing.
type slotWait struct {
	mu    sync.Mutex
	total time.Duration
	since time.Time // the start of the wait in progress; zero: none
}

// start records that a wait began at now.
func (w *slotWait) start(now time.Time) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() {
		w.since = now
	}
}

// stop records that the wait in progress, if any, ended at now.
func (w *slotWait) stop(now time.Time) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.since.IsZero() {
		w.total += now.Sub(w.since)
		w.since = time.Time{}
	}
}

// waited returns the time waited by now, the wait in progress included.
func (w *slotWait) waited(now time.Time) time.Duration {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.total
	if !w.since.IsZero() {
		d += now.Sub(w.since)
	}
	return d
}
