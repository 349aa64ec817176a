package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/session"
)

// dialRequest asks the peer manager for a connection to addr; reply gets the outcome.
type dialRequest struct {
	addr session.PeerAddr
	keep bool
	// auto is set for the node's own choices (the bootstrapper's dials), which leave alone a peer the
	// application disconnected (held); the application's keep dial ends the hold.
	auto bool
	// once, with keep, keeps the connection but does not redial the peer once it is lost (topic discovery's).
	once  bool
	reply chan<- error
	// deadline is when the caller stops waiting (its context's), zero for none: a dial waiting for an outbound slot
	// fails with ErrTooManyPeers before it, so that the caller learns why (a liveness check that could not be sent
	// proves nothing against the peer, a timeout would count against it).
	deadline time.Time
	// gaveUp is the caller's context's Done channel (nil: none): a dial not kept whose caller gave up is not made
	// (see dial).
	gaveUp <-chan struct{}
	// slotWaited, if not nil, measures the time the dial waits for a free outbound slot (contextWithSlotWait).
	slotWaited *slotWait
}

// callerGaveUp tells whether the caller of a dial not kept no longer waits for it: its context ended. Such a dial
// is not made: one that waited for a closing connection to end (afterClose) dialed once the connection had closed,
// for a Send or Request that had failed with its context's error already. A kept dial is made: its context bounds
// the wait, not the wish (Connect).
func (req *dialRequest) callerGaveUp() bool {
	if req.keep || req.gaveUp == nil {
		return false
	}
	select {
	case <-req.gaveUp:
		return true
	default:
		return false
	}
}

// errCallerGaveUp answers a dial whose caller's context ended before it was made (dialRequest.callerGaveUp); the
// caller has returned with its context's error.
var errCallerGaveUp = errors.New("the caller gave up before the dial")

// slotAnswerMargin is how long before its caller's deadline a dial waiting for a slot gives up.
const slotAnswerMargin = 50 * time.Millisecond

func (m *peerManager) dial(ctx actor.Context, req *dialRequest) {
	if m.ctx.Err() != nil {
		// Stopping: protoactor still delivers queued messages after the stop began.
		reply(req.reply, ErrClosed)
		return
	}
	if req.callerGaveUp() {
		reply(req.reply, fmt.Errorf("connect %s: %w", req.addr.ID.Short(), errCallerGaveUp))
		return
	}
	id := req.addr.ID
	if err := checkPeerID(id, req.addr.Addr); err != nil {
		// The dial would be recorded under the zero id and its success reported under the peer's: never answered.
		reply(req.reply, err)
		return
	}
	if id == m.n.ID() {
		reply(req.reply, ErrSelf)
		return
	}
	if reason, banned := m.banned(id, hostIP(req.addr.Addr), time.Now()); banned {
		reply(req.reply, bannedError(id, reason))
		return
	}
	switch {
	case req.auto && req.keep && m.isHeld(id, time.Now()):
		reply(req.reply, fmt.Errorf("connect %s: %w", id.Short(), errHeld))
		return
	case !req.auto:
		delete(m.undial, id) // the application wants it again, after a Disconnect during the dial
		if req.keep {
			delete(m.held, id)
		}
	}
	switch {
	case req.keep && req.once:
		m.keepWithoutRedial(id)
	case req.keep:
		if w, ok := m.wanted[id]; !ok {
			m.wanted[id] = &wantedPeer{addr: req.addr, auto: req.auto,
				backoff: session.NewBackoff(m.n.cfg.RedialBase, m.n.cfg.RedialMax, m.n.cfg.RedialAttempts, nil)}
		} else {
			w.addr = req.addr // the newest address: a peer that moved is redialed where it is now
			if !req.auto {
				w.auto = false // the application wants it too
			}
		}
	}
	if e, ok := m.conns[id]; ok && req.reply != nil && e.pc.isClosing() {
		// The connection is going: answered now, a Connect right after a Disconnect succeeded with no connection
		// left once the goodbye was said (TestConnectAfterDisconnectConnectsAgain). The dial waits for it to end.
		if m.afterCloseN >= maxSlotWaiters {
			reply(req.reply, fmt.Errorf("%w: %s: its connection is closing, and %d dials wait for theirs to end",
				ErrPeerGone, id.Short(), m.afterCloseN))
			return
		}
		if m.afterClose == nil {
			m.afterClose = make(map[session.NodeID][]*dialRequest)
		}
		m.afterClose[id] = append(m.afterClose[id], req)
		m.afterCloseN++
		return
	}
	if e, ok := m.conns[id]; ok {
		if req.keep {
			m.keepConn(e)
			if !req.once { // another reason to keep it than a topic's
				e.pc.forTopics, e.pc.released = false, false
			}
		}
		reply(req.reply, nil)
		return
	}
	if waiters, ok := m.dialing[id]; ok {
		if req.reply != nil {
			m.dialing[id] = append(waiters, req.reply)
		}
		return
	}
	if m.outboundFull() && !m.evictIdleOutbound() {
		if req.reply != nil && len(m.slotWait) < maxSlotWaiters {
			// Transient connections free up within milliseconds under load: wait for one rather than fail.
			deadline := time.Now().Add(m.n.cfg.DialTimeout)
			if d := req.deadline.Add(-slotAnswerMargin); !req.deadline.IsZero() && d.Before(deadline) {
				deadline = d
			}
			m.slotWait = append(m.slotWait, slotWaiter{req: req, deadline: deadline})
			req.slotWaited.start(time.Now())
			m.n.log.Debug().Str("peer", id.Short()).Msg("dial waiting for an outbound slot")
			m.armSlotRetry()
			return
		}
		err := fmt.Errorf("%w: %d outbound connections", ErrTooManyPeers, m.n.cfg.MaxOutboundPeers)
		reply(req.reply, err)
		m.dialFailed(id, err)
		return
	}
	var waiters []chan<- error
	if req.reply != nil {
		waiters = append(waiters, req.reply)
	}
	m.dialing[id] = waiters
	m.pending++
	m.n.stats.pendingHandshakes.Store(int64(m.pending))
	m.goDial(req.addr, req.keep)
}

// connectByID dials a peer to keep, from the address book, or after a lookup in a goroutine the peer manager owns
// (one at a time: a request while one runs is dropped, its asker retries later).
func (m *peerManager) connectByID(ctx actor.Context, id session.NodeID) {
	if m.ctx.Err() != nil {
		return
	}
	if m.isHeld(id, time.Now()) {
		return
	}
	if e, ok := m.conns[id]; ok {
		m.keepConn(e)
		e.pc.forTopics, e.pc.released = false, false
		return
	}
	if addr, ok := m.n.addrs.get(id); ok {
		m.dial(ctx, &dialRequest{addr: session.PeerAddr{ID: id, Addr: addr}, keep: true, auto: true})
		return
	}
	if m.lookingUp {
		return
	}
	m.lookingUp = true
	self, root, n := m.self, m.root, m.n
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		lctx, cancel := context.WithTimeout(m.ctx, n.cfg.DialTimeout)
		addr, err := n.Lookup(lctx, id)
		cancel()
		root.Send(self, &lookedUp{addr: addr, err: err, from: m})
	}()
}

// lookedUp carries the outcome of connectByID's lookup; from is the peer manager instance that asked.
type lookedUp struct {
	addr session.PeerAddr
	err  error
	from *peerManager
}

func reply(ch chan<- error, err error) {
	if ch != nil {
		ch <- err
	}
}

// finishDial ends the dial to id in progress: its waiters get err, and a Disconnect's mark on it is spent.
func (m *peerManager) finishDial(id session.NodeID, err error) {
	m.answerDialers(id, err)
	delete(m.dialing, id)
	delete(m.undial, id)
}

// answerDialers gives err to the callers waiting for a dial to id, leaving the dial itself in progress.
func (m *peerManager) answerDialers(id session.NodeID, err error) {
	waiters, ok := m.dialing[id]
	if !ok {
		return
	}
	for _, w := range waiters {
		w <- err
	}
	m.dialing[id] = nil
}
