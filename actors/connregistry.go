package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// The peer manager's connections from registration to their end: register, unregister, connClosed, and the
// application's dials that waited for a closing connection (afterClose).

// register makes a handshaken connection the node's: its actor, the peer set, the event.
func (m *peerManager) register(ctx actor.Context, sc *session.Conn, outbound bool) {
	m.nextID++
	pc := newPeerConn(sc, m.nextID, outbound, &m.n.cfg, &m.n.log, m.n)
	_, wanted := m.wanted[pc.id]
	_, once := m.keepOnce[pc.id]
	delete(m.keepOnce, pc.id)
	pc.kept.Store(wanted || once)
	pc.forTopics = once && !wanted
	pc.remoteTransient.Store(!outbound && sc.Peer().Transient)
	// Registered before its reader starts: a protocol actor answering the peer's first message finds it.
	m.n.peers.set(pc)
	m.spawning = pc
	pid := ctx.SpawnPrefix(m.connProps, "conn-"+pc.id.Short())
	m.spawning = nil
	e := &connEntry{pid: pid, pc: pc}
	m.conns[pc.id], m.byActor[pid.Id] = e, e
	m.sweepSoon()
	info := sc.Peer()
	if len(info.ListenAddrs) > 0 {
		m.n.addrs.put(pc.id, info.ListenAddrs[0])
	}
	if w, ok := m.wanted[pc.id]; ok {
		w.stopTimer() // its backoff is reset only once the connection has lasted (connClosed)
		w.up = true
	}
	m.n.log.Debug().Str("peer", pc.id.Short()).Bool("outbound", outbound).Str("remote", sc.RemoteAddr().String()).Msg("peer connected")
	m.n.events.Publish(&messages.PeerConnected{
		PeerId: pc.id.Bytes(), RemoteAddr: sc.RemoteAddr().String(), Outbound: outbound, ListenAddrs: info.ListenAddrs,
		ConnId: pc.connID,
	})
}

// dialAfterClose dials again for the application's requests that waited for id's closing connection to end
// (afterClose), unless another connection to id took its place meanwhile, which answers them.
func (m *peerManager) dialAfterClose(ctx actor.Context, id session.NodeID) {
	reqs := m.afterClose[id]
	if len(reqs) == 0 {
		return
	}
	delete(m.afterClose, id)
	m.afterCloseN -= len(reqs)
	for _, req := range reqs {
		m.dial(ctx, req)
	}
}

// unregister forgets a connection: it no longer counts, takes sends or holds requests.
func (m *peerManager) unregister(e *connEntry) {
	if cur, ok := m.conns[e.pc.id]; ok && cur == e {
		delete(m.conns, e.pc.id)
	}
	m.n.peers.remove(e.pc)
	m.n.requests.failConn(e.pc, e.pc.goneError())
}

func (m *peerManager) connClosed(ctx actor.Context, e *connEntry) {
	delete(m.byActor, e.pid.Id)
	m.unregister(e)
	defer m.dialAfterClose(ctx, e.pc.id)
	<-e.pc.done // both goroutines have exited: reason and detail are final
	pc := e.pc
	m.n.stats.connDone(pc)
	if pc.retired {
		return // never registered (retire): no peer left, no event
	}
	m.n.log.Debug().Str("peer", pc.id.Short()).Str("reason", pc.reason.String()).Str("detail", pc.detail).Bool("by_remote", pc.byRemote).
		Dur("connected_for", time.Since(pc.connectedAt)).Msg("peer disconnected")
	_, still := m.conns[pc.id] // its replacement, registered before it was closed as a duplicate
	m.n.events.Publish(&messages.PeerDisconnected{
		PeerId: pc.id.Bytes(), Reason: pc.reason, Detail: pc.detail, Outbound: pc.outbound, ConnId: pc.connID,
		StillConnected: still,
	})
	// A connection closed as a duplicate has a replacement when the tie-break was this node's; when the peer
	// refused it as one, the peer's own connection may be a dead one this node no longer has (the peer restarted,
	// say), and only a redial finds out.
	if _, ok := m.conns[pc.id]; !ok {
		if w, ok := m.wanted[pc.id]; ok && time.Since(pc.connectedAt) >= redialResetAfter {
			w.backoff.Reset()
		}
		if m.chosenPeerLeft(pc) {
			return
		}
		m.scheduleRedial(pc.id, errors.New(pc.reason.String()))
	}
}
