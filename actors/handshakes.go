package actors

// The handshakes of the peer manager's connections: an accepted connection's admission, and the Noise handshake
// of every connection, accepted or dialed, in a goroutine the peer manager owns (handshakeDone takes the outcome).

import (
	"context"
	"fmt"
	"net"
	"time"

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
		InboundWindow: windowOf(&m.n.cfg),
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
	if m.pending >= m.n.cfg.MaxPendingHandshakes ||
		(m.count(false) >= m.n.cfg.MaxInboundPeers && !m.evictIdleInbound() && !m.canEvictInbound()) {
		m.n.log.Debug().Str("remote", raw.RemoteAddr().String()).Int("pending", m.pending).Msg("inbound connection refused: no free slot")
		_ = raw.Close()
		return
	}
	m.pending++
	m.pendInbound(raw.RemoteAddr())
	m.goHandshake(raw, false, session.PeerAddr{})
}

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
