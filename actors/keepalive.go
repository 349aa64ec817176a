package actors

import (
	"time"

	"github.com/actormesh/actormesh/messages"
)

// The keepalive of a connection: a ping when it has been quiet for PingInterval (its pong measures the round-trip
// time), timers armed and stopped here.

// schedulePing arms the keepalive timer to fire after d, unless the connection finished.
func (pc *peerConn) schedulePing(d time.Duration) {
	pc.pingMu.Lock()
	defer pc.pingMu.Unlock()
	if !pc.pingsStopped {
		pc.pingTimer = time.AfterFunc(d, pc.ping)
	}
}

// rttRefreshPings is how many PingIntervals a busy connection goes without a keepalive ping: its RTT (PeerInfo)
// is refreshed that often.
const rttRefreshPings = 6

// ping queues a keepalive ping once the connection received nothing for PingInterval, so that a quiet peer
// answers with a pong well within IdleTimeout (its pong also measures the RTT), and arms the next check. A
// connection that receives needs no ping: the peer is alive, and the peer's side, if it receives nothing, pings
// on its own. A busy connection still pings every rttRefreshPings intervals, to keep its RTT fresh. Before,
// every connection end pinged every PingInterval whatever the traffic, though node sim's connections all carry
// gossip every few seconds: this took its CPU per delivery from 142-146 to 132-142 µs, its idle network's
// from 387-455 to 311-433 µs per node-second and its wire bytes from 1779-1807 to 1743-1800 per delivery
// (seeds 7-11, interleaved).
func (pc *peerConn) ping() {
	now := time.Now()
	quiet := pc.since(pc.lastRecv.Load(), now)
	sent := pc.kaSent.Load() // 0: no keepalive yet, the first one measures the RTT
	if quiet < pc.cfg.PingInterval && sent != 0 && pc.since(sent, now) < rttRefreshPings*pc.cfg.PingInterval {
		pc.schedulePing(pc.cfg.PingInterval - quiet) // when the connection has been quiet for PingInterval
		return
	}
	pc.sendPing(false)
	pc.schedulePing(pc.cfg.PingInterval)
}

// sendPing sends a keepalive ping; keeps tells the peer that the node keeps the connection from now on (see
// declareKept).
func (pc *peerConn) sendPing(keeps bool) {
	nonce := pc.kaNonce.Add(1) | keepaliveNonce
	pc.kaSent.Store(pc.mono())
	pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: nonce, Keeps: keeps}}})
}

// declareKept tells the peer that the node keeps an outbound connection it dialed as transient: the peer, which
// closes an idle inbound connection its dialer does not keep, keeps it too. Without it, the peer learned of the
// change only if gossip started on the connection while its relay did not know the node.
func (pc *peerConn) declareKept() {
	if pc.outbound {
		pc.sendPing(true)
	}
}

// keepaliveNonce is set in the nonce of every keepalive ping and in no id of the request table (API pings use
// those): the two spaces never meet, so a keepalive's pong never completes an API ping, nor the reverse. Before,
// both counted from 1, and an API ping whose nonce was the connection's current keepalive nonce timed out.
const keepaliveNonce = 1 << 63

// stopPings stops the keepalive timer for good.
func (pc *peerConn) stopPings() {
	pc.pingMu.Lock()
	defer pc.pingMu.Unlock()
	pc.pingsStopped = true
	if pc.pingTimer != nil {
		pc.pingTimer.Stop()
	}
}
