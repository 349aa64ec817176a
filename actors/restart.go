package actors

// What a peer manager that panicked hands to the instance that replaces it.

import (
	"fmt"
	"maps"
	"time"

	"github.com/actormesh/actormesh/session"
)

// settleFailed answers or applies the request this instance panicked on, which was lost with it: a Connect or a
// Send's dial waited for its context (for good under context.Background), a Ban or Disconnect that returned nil was
// undone by the restart's redials (a chaos audit's findings). It does only what cannot panic again: replies, and
// the ban list and holds, which the Props own and the next instance keeps.
func (m *peerManager) settleFailed(failed any) {
	now := time.Now()
	switch req := failed.(type) {
	case *dialRequest:
		reply(req.reply, errRestarted)
	case *listBansRequest:
		req.reply <- m.bans.list(now)
	case *banRequest:
		m.bans.add(req.key, req.until, req.reason, now)
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
