package actors

// What a peer manager that panicked hands to the instance that replaces it.

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// settleFailed answers or applies the request this instance panicked on, which was lost with it: a Connect or a
// Send's dial waited for its context (for good under context.Background), a Ban or Disconnect that returned nil was
// undone by the restart (a chaos audit's findings). It does only what cannot block: a reply is sent only if
// there is room for it, and a dial already among the waiters is left to stop, which answers those. A panic in it
// is logged: protoactor's Restarting must end.
func (m *peerManager) settleFailed(failed any) {
	defer func() {
		if p := recover(); p != nil {
			m.n.log.Error().Interface("panic", p).Msg("settling the request the peer manager failed on")
		}
	}()
	now := time.Now()
	switch req := failed.(type) {
	case *dialRequest:
		waiting := slices.Contains(m.dialing[req.addr.ID], req.reply) ||
			slices.ContainsFunc(m.slotWait, func(w slotWaiter) bool { return w.req == req })
		if !waiting && req.reply != nil {
			select {
			case req.reply <- errRestarted:
			default: // answered before the panic
			}
		}
	case *banRequest: // in the ban list already (Node.banNow): its peers are redialed no more
		maps.DeleteFunc(m.wanted, func(id session.NodeID, w *wantedPeer) bool {
			if !req.key.covers(id, hostIP(w.addr.Addr)) {
				return false
			}
			w.stopTimer()
			return true
		})
	case *disconnectRequest:
		m.hold(req.id, now)
		if w, ok := m.wanted[req.id]; ok {
			w.stopTimer()
			delete(m.wanted, req.id)
		}
	}
}

// rewanted is a wanted peer handed from a peer manager that restarts to the next.
type rewanted struct {
	addr session.PeerAddr
	auto bool
}

// errRestarted fails the dials in progress when the peer manager restarts after a panic.
var errRestarted = fmt.Errorf("%w: the peer manager restarted", ErrPeerGone)
