package actors

import (
	"sync/atomic"
	"time"
)

// heldCredits counts the inbound credits of one connection held by the messages its reader handed to one protocol
// actor (reg) that the actor has not processed yet. Credits are counted per actor because protoactor drops, without
// running the releaseCredits middleware, the messages of an actor that has stopped: those left in its mailbox and
// those sent to it afterwards (dead letters). Such a message's credit would be lost, and a connection that lost
// InboundPending of them would never read again. Once reg is dropped (its actor has stopped: the protocol
// supervisor, or the guardian for the routing actor and the relay, drops it on Terminated), the actor processes
// nothing more, so every credit its counter still holds is lost: the reader takes them all back (reclaim).
type heldCredits struct {
	reg   *registration
	n     atomic.Int32
	bytes atomic.Int64 // the payload bytes of those messages (peerConn.heldBytes)
	// stalled is set (reader only) when an application actor stayed past its share (overShare) for
	// ProtocolStallTimeout: its messages are then refused at once, until it is back within its share.
	stalled bool
}

// heldFor returns the counter of the credits held by the connection's messages to reg, pruning (reclaim) those of
// stopped actors first when the registry changed (gen) since the last prune. Reader only.
func (pc *peerConn) heldFor(reg *registration, gen uint64) *heldCredits {
	if pc.held == nil {
		pc.held = make(map[*registration]*heldCredits)
	}
	if gen != pc.heldGen {
		pc.reclaim()
		pc.heldGen = gen
	}
	h := pc.held[reg]
	if h == nil {
		h = &heldCredits{reg: reg}
		pc.held[reg] = h
	}
	return h
}

// reclaim returns the credits held by messages to protocol actors that have stopped, and forgets those actors.
// It never blocks: acquire adds to the channel before the counter and release takes from the counter first, so
// the channel holds at least the sum of the counters. Reader only.
func (pc *peerConn) reclaim() {
	for reg, h := range pc.held {
		if !reg.stopped() {
			continue
		}
		for i := h.n.Swap(0); i > 0; i-- {
			<-pc.credits
		}
		pc.heldBytes.Add(-h.bytes.Swap(0))
		delete(pc.held, reg)
	}
}

// withinShare tells whether a message of size payload bytes to the application protocol actor of h may be taken:
// once that actor, or the application's actors together, are within their share of the connection's inbound
// budget (overShare), it waits for them up to Config.ProtocolStallTimeout; an actor still past it then is stalled,
// and its messages are refused at once (false) until it is back within its share. The reader reads for every
// protocol of its peer: waiting for one stuck actor stopped the connection's gossip, pings and other protocols.
// An actor that is only behind (it processes its messages) keeps its back-pressure and loses nothing. Reader only.
func (pc *peerConn) withinShare(h *heldCredits, r *protocolRegistry, size int64) bool {
	if !pc.overShare(h, size) {
		h.stalled = false
		return true
	}
	if h.stalled {
		return false
	}
	deadline := time.NewTimer(pc.cfg.ProtocolStallTimeout)
	defer deadline.Stop()
	for {
		switch pc.awaitRelease(h, r, func() bool { return !pc.overShare(h, size) }, deadline.C) {
		case waitTimedOut:
			h.stalled = true
			return false
		case waitAgain:
		default: // within its share; or the actor stopped, or the connection closes: acquire refuses the message
			return true
		}
	}
}

// waitResult is how awaitRelease ended.
type waitResult int

const (
	waitAgain    waitResult = iota // something was released: check again
	waitRoom                       // room holds
	waitStopped                    // h's actor stopped
	waitClosing                    // the connection closes
	waitTimedOut                   // the deadline passed
)

// awaitRelease waits once for the connection's protocol actors to release something, unless room holds already
// (checked after the credits of stopped actors are taken back), h's actor has stopped, the connection closes or
// deadline (nil: none) passes. Reader only.
func (pc *peerConn) awaitRelease(h *heldCredits, r *protocolRegistry, room func() bool, deadline <-chan time.Time) waitResult {
	pc.bytesWaiting.Store(true) // before the check below: a release after it signals bytesFreed
	defer pc.bytesWaiting.Store(false)
	dropped := r.droppedChan() // before reclaim: a drop after it wakes the select
	pc.reclaim()
	switch {
	case h.reg.stopped():
		return waitStopped
	case room():
		return waitRoom
	}
	select {
	case <-pc.bytesFreed:
	case <-dropped:
	case <-pc.closing:
		return waitClosing
	case <-deadline:
		return waitTimedOut
	}
	return waitAgain
}

// overShare tells whether a message of size payload bytes to the application protocol actor of h would take that
// actor, or the application's actors together, past their share of the connection's inbound budget
// (InboundPending and InboundPendingBytes): half for one actor, three quarters for all, so that one slow actor
// leaves room to the others and the node's own (gossip, discovery) a quarter at least. A message is never past its
// share while its actor holds none. Reader only.
func (pc *peerConn) overShare(h *heldCredits, size int64) bool {
	own, ownBytes := int64(h.n.Load()), h.bytes.Load()
	if own == 0 {
		return false
	}
	var all, allBytes int64
	for reg, held := range pc.held {
		if reg.user {
			all += int64(held.n.Load())
			allBytes += held.bytes.Load()
		}
	}
	count, budget := int64(pc.cfg.InboundPending), int64(pc.cfg.InboundPendingBytes)
	return own+1 > max(1, count/2) || ownBytes+size > budget/2 || all+1 > max(1, count*3/4) || allBytes+size > budget*3/4
}

// acquire takes an inbound credit for a message of size payload bytes to h's protocol actor. It blocks (only this
// connection's reader) while protocol actors are behind, by count (InboundPending) or by bytes
// (InboundPendingBytes), and fails once the connection is closing (checked first: a select between a free credit
// and the closed channel would pick either) or h's actor has stopped.
func (pc *peerConn) acquire(h *heldCredits, r *protocolRegistry, size int64) bool {
	if pc.isClosing() {
		return false
	}
	select {
	case pc.credits <- struct{}{}:
	default:
		if !pc.awaitCredit(h, r) {
			return false
		}
	}
	if !pc.acquireBytes(h, r, size) {
		<-pc.credits
		return false
	}
	h.n.Add(1)
	h.bytes.Add(size)
	return true
}

// awaitCredit waits for a free credit. Each time a protocol actor is unregistered it takes back the credits of the
// messages that actor lost (reclaim): they may be the ones it waits for.
func (pc *peerConn) awaitCredit(h *heldCredits, r *protocolRegistry) bool {
	for {
		dropped := r.droppedChan() // before reclaim: a drop after it wakes the select
		pc.reclaim()
		if h.reg.stopped() {
			return false
		}
		select {
		case pc.credits <- struct{}{}:
			return true
		case <-pc.closing:
			return false
		case <-dropped:
		}
	}
}

// acquireBytes adds size to the held bytes once they leave room for it, waiting as awaitCredit does. Only the
// reader adds, so the room it sees can only grow until it adds. Config validation makes InboundPendingBytes hold
// a message of MaxMessageSize, so a message always fits once nothing is held.
func (pc *peerConn) acquireBytes(h *heldCredits, r *protocolRegistry, size int64) bool {
	budget := int64(pc.cfg.InboundPendingBytes)
	fits := func() bool { return pc.heldBytes.Load()+size <= budget }
	for {
		if fits() {
			pc.heldBytes.Add(size)
			return true
		}
		switch pc.awaitRelease(h, r, fits, nil) {
		case waitStopped, waitClosing:
			return false
		}
	}
}

// release returns the credit and the size bytes of a processed message.
func (pc *peerConn) release(size int64) {
	pc.heldBytes.Add(-size)
	if pc.bytesWaiting.Load() {
		select {
		case pc.bytesFreed <- struct{}{}:
		default:
		}
	}
	<-pc.credits
}
