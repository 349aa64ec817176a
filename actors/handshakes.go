package actors

// The dials and handshakes of the peer manager's connections: an accepted connection's admission, a dial, and the
// Noise handshake of every connection, accepted or dialed, in a goroutine the peer manager owns (handshakeDone takes
// the outcome), and the goodbye of a connection refused once handshaken, or retired as a duplicate.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

func (m *peerManager) handshakeConfig() session.HandshakeConfig {
	var listen []string
	if m.n.advertise != "" {
		listen = []string{m.n.advertise}
	}
	return session.HandshakeConfig{
		Identity: m.n.identity, NetworkID: m.n.cfg.NetworkID, ListenAddrs: listen,
		Timeout: m.n.cfg.HandshakeTimeout, MaxMessageSize: m.n.cfg.MaxMessageSize, Buffers: m.bufs,
		InboundWindow: windowOf(&m.n.cfg), RekeyInterval: m.n.cfg.RekeyInterval,
	}
}

func (m *peerManager) accept(raw net.Conn) {
	if m.ctx.Err() != nil { // stopping: no handshake goroutine may start after Stopping waited for them
		_ = raw.Close()
		return
	}
	if reason := m.admitInbound(raw.RemoteAddr(), time.Now()); reason != "" {
		m.n.log.Debug().Str("remote", raw.RemoteAddr().String()).Str("reason", reason).Msg("inbound connection refused")
		_ = raw.Close()
		return
	}
	now := time.Now()
	// Only inbound handshakes count against the limit: the node's own dials, bounded by MaxOutboundPeers, took
	// places no inbound handshake could be closed for, and while as many of them hung on addresses that accept and
	// never answer (DialTimeout and HandshakeTimeout each), every peer dialing in was refused (an audit's finding).
	full := len(m.inHandshakes)-m.evicting >= m.n.cfg.MaxPendingHandshakes
	var victim net.Conn // a pending handshake to close for this one (evictPendingInbound), once it is admitted
	if full {
		victim = m.pendingVictim(now)
	}
	if (full && victim == nil) ||
		(m.count(false) >= m.n.cfg.MaxInboundPeers && !m.evictIdleInbound() && !m.canEvictInbound()) {
		m.n.log.Debug().Str("remote", raw.RemoteAddr().String()).Int("pending", m.pending).Msg("inbound connection refused: no free slot")
		_ = raw.Close()
		return
	}
	if victim != nil {
		m.evictPendingInbound(victim, now)
	}
	m.pending++
	m.n.stats.pendingHandshakes.Store(int64(m.pending))
	m.pendInbound(raw.RemoteAddr())
	m.inHandshakes[raw] = &inHandshake{at: now, host: hostKey(addrIP(raw.RemoteAddr()))}
	m.goHandshake(raw, false, session.PeerAddr{})
}

// inHandshake is an inbound handshake in progress: when it began, its remote's hostKey, and whether it was closed
// to make room (evictPendingInbound).
type inHandshake struct {
	at      time.Time
	host    netip.Addr
	evicted bool
}

// pendingVictim picks the inbound handshake to close to make room for a new inbound connection when
// MaxPendingHandshakes are in progress: the oldest of the host holding the most, if that one has gone on for
// minEvictableHandshake (an honest peer's handshake takes round trips, not seconds); nil if none qualifies.
// Connections that send nothing took every place for HandshakeTimeout and, renewed, for good: one host with a few
// addresses (a /29, or any IPv6 /64) kept every peer out (an audit's finding).
func (m *peerManager) pendingVictim(now time.Time) net.Conn {
	minAge := min(minEvictableHandshake, m.n.cfg.HandshakeTimeout/2)
	held := make(map[netip.Addr]int)
	for _, h := range m.inHandshakes {
		if !h.evicted {
			held[h.host]++
		}
	}
	var victim net.Conn
	var pick *inHandshake
	for raw, h := range m.inHandshakes {
		if h.evicted || now.Sub(h.at) < minAge {
			continue
		}
		if pick == nil || held[h.host] > held[pick.host] || (held[h.host] == held[pick.host] && h.at.Before(pick.at)) {
			victim, pick = raw, h
		}
	}
	return victim
}

// evictPendingInbound closes the pending inbound handshake of victim (pendingVictim) for a newcomer admitted in its
// place; the handshake's report frees its place.
func (m *peerManager) evictPendingInbound(victim net.Conn, now time.Time) {
	h := m.inHandshakes[victim]
	h.evicted = true
	m.evicting++
	m.n.log.Debug().Str("remote", victim.RemoteAddr().String()).Dur("pending_for", now.Sub(h.at)).
		Msg("inbound handshake closed to make room: pending handshakes full")
	_ = victim.Close()
}

// minEvictableHandshake is how long an inbound handshake goes on before evictPendingInbound may close it (at most
// half of HandshakeTimeout).
const minEvictableHandshake = time.Second

// handshake runs session.Handshake on raw and closes raw if it fails. Cancelling ctx (the peer manager stopping)
// interrupts a handshake in progress, but does not touch one that has ended: the peer may have registered the
// connection already, so its closing is left to the caller, who says goodbye (even if its report is never read: see
// parked).
// A panic in it (a bug in parsing what the peer sent) fails that handshake only: it runs in a goroutine of its own,
// where no supervisor would catch it.
func handshake(ctx context.Context, raw net.Conn, cfg session.HandshakeConfig, initiator bool, expected session.NodeID) (sc *session.Conn, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc, err = nil, fmt.Errorf("%w: internal error: %v", session.ErrHandshake, p)
		}
		if err != nil {
			_ = raw.Close()
		}
	}()
	return session.Handshake(ctx, raw, cfg, initiator, expected)
}

// goHandshake runs the handshake in a goroutine owned by the peer manager; stopping interrupts it.
func (m *peerManager) goHandshake(raw net.Conn, outbound bool, addr session.PeerAddr) {
	cfg := m.handshakeConfig()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sc, err := handshake(m.ctx, raw, cfg, outbound, addr.ID)
		m.report(&handshakeDone{raw: raw, sc: sc, err: err, outbound: outbound, addr: addr})
	}()
}

// goDial dials and handshakes in one goroutine owned by the peer manager. An address the application did not give
// is dialed under the node's address check (givenAddrs).
func (m *peerManager) goDial(addr session.PeerAddr, keep bool) {
	transport, timeout, cfg := m.n.cfg.Transport, m.n.cfg.DialTimeout, m.handshakeConfig()
	cfg.Transient = !keep
	given, check := m.n.given.has(addr.Addr), m.n.dialCheck
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		dctx, cancel := context.WithTimeout(m.ctx, timeout)
		if !given {
			dctx = session.ContextWithAddrCheck(dctx, check)
		}
		raw, err := transport.Dial(dctx, addr.Addr)
		cancel()
		if err != nil {
			m.report(&handshakeDone{err: fmt.Errorf("%w: dial %s: %w", ErrUnreachable, addr.Addr, err), dialFailed: true, outbound: true, addr: addr})
			return
		}
		sc, err := handshake(m.ctx, raw, cfg, true, addr.ID)
		switch {
		case err == nil || m.ctx.Err() != nil || refusedByPeerIdentity(err):
		case closedBeforeHandshake(err):
			// Something at the address accepted the connection and closed it unanswered: a node refusing it before
			// any handshake work (its per-IP throttle, a ban of this node's IP, no free slot), as far as one can tell.
			err = fmt.Errorf("%w: handshake with %s: %w: %w", ErrUnreachable, addr.Addr, errClosedBeforeHandshake, err)
		default:
			// The peer timed out or answered no valid handshake: no peer to reach there now. The session's error
			// stays wrapped; it was returned alone, and matched no sentinel of Send's.
			err = fmt.Errorf("%w: handshake with %s: %w", ErrUnreachable, addr.Addr, err)
		}
		m.report(&handshakeDone{raw: raw, sc: sc, err: err, outbound: true, addr: addr})
	}()
}

// errClosedBeforeHandshake marks a dial whose connection the address accepted and then closed (or reset) before the
// handshake ended, unanswered (closedBeforeHandshake); routingNetwork tells discovery (routing.ErrRefusedBeforeHandshake).
var errClosedBeforeHandshake = errors.New("closed by the peer's address before the handshake")

// closedBeforeHandshake tells whether a dialer's handshake failed because the other end closed or reset the
// connection (not a timeout, nor a bad message): a node refuses a connection so before any handshake work, where a
// node that is down leaves the dial refused or unanswered.
func closedBeforeHandshake(err error) bool {
	return errors.Is(err, session.ErrHandshake) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// refusedByPeerIdentity tells whether a handshake failed on who the peer is or what it speaks (another node than
// expected, another network, another protocol version, a bad identity signature): the session's sentinel is the
// answer, not ErrUnreachable.
func refusedByPeerIdentity(err error) bool {
	return errors.Is(err, session.ErrWrongPeer) || errors.Is(err, session.ErrNetworkMismatch) ||
		errors.Is(err, session.ErrVersionMismatch) || errors.Is(err, session.ErrBadSignature)
}

// report hands a handshake outcome to the actor; a successful connection is parked until the actor takes it.
func (m *peerManager) report(d *handshakeDone) {
	d.from = m
	if d.sc != nil {
		m.parkedMu.Lock()
		m.parked[d.sc] = struct{}{}
		m.parkedMu.Unlock()
	}
	m.root.Send(m.self, d)
}

// closeWithNotice tells the peer why and closes, in a goroutine owned by the peer manager.
func (m *peerManager) closeWithNotice(sc *session.Conn, reason messages.DisconnectReason, detail string) {
	b, _ := proto.Marshal(disconnectEnvelope(reason, detail))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sayGoodbye(sc, b)
	}()
}

// sayGoodbye writes the encoded goodbye b on a connection that has no reader and closes it, lingering as
// peerConn.linger does for a refusal: up to closeFlushTimeout, it reads and drops what the peer still sends until
// the peer closes its side, so that unread data does not reset the connection and drop the goodbye.
func sayGoodbye(sc *session.Conn, b []byte) {
	defer sc.Close()
	_ = sc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	if sc.WriteMessages(b) != nil || sc.CloseWrite() != nil {
		return
	}
	_ = sc.SetReadDeadline(time.Now().Add(closeFlushTimeout))
	for {
		if _, err := sc.ReadMessage(); err != nil {
			return
		}
	}
}

// retire closes a connection that lost the simultaneous-dial tie-break as it came up, the way a replaced one is
// closed (DUPLICATE_CONNECTION): its connection actor says goodbye and reads on until the peer's goodbye or the end
// of the linger (up to IdleTimeout, one such connection at a time per peer: awaitingPeer), delivering what the
// peer sent on it before it learned of the tie-break. Refused with a goodbye and nothing read, those messages,
// taken by the peer's Send, were lost. It is not registered: it takes no sends, holds no slot and makes no peer
// events.
func (m *peerManager) retire(ctx actor.Context, sc *session.Conn, outbound bool) {
	m.nextID++
	pc := newPeerConn(sc, m.nextID, outbound, &m.n.cfg, &m.n.log, m.n)
	pc.retired = true
	long := !m.awaitingPeer(pc.id) // the two are in opposite directions (keepNew): a simultaneous dial's loser
	pc.closeDuplicate("already connected", long)
	m.spawning = pc
	pid := ctx.SpawnPrefix(m.connProps, "conn-"+pc.id.Short())
	m.spawning = nil
	m.byActor[pid.Id] = &connEntry{pid: pid, pc: pc, awaitsPeer: long}
}
