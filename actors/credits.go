package actors

import (
	"sync/atomic"
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

	// pc and protocol are the connection and the protocol name the credits are of; flow is where the peer's
	// messages to an application protocol stand in its window (guarded by pc.in.mu; see flow.go).
	pc       *peerConn
	protocol string
	flow     recvFlow
}

// heldFor returns the counter of the credits held by the connection's messages to reg (serving protocol),
// pruning (reclaim) those of stopped actors first when the registry changed (gen) since the last prune. Reader
// only.
func (pc *peerConn) heldFor(reg *registration, protocol string, gen uint64) *heldCredits {
	if pc.held == nil {
		pc.held = make(map[*registration]*heldCredits)
	}
	if gen != pc.heldGen {
		pc.reclaim()
		pc.heldGen = gen
	}
	h := pc.held[reg]
	if h == nil {
		h = &heldCredits{reg: reg, pc: pc, protocol: protocol}
		pc.held[reg] = h
		if windowed(protocol) {
			reg.followFlow(h)
		}
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
		h.reclaimFlow() // the registry may have done it (registration.reclaimFlows)
		delete(pc.held, reg)
	}
}

// forgetFlows unties the connection's credit holders from their actors' registrations (followFlow), once the
// reader has ended. Reader only.
func (pc *peerConn) forgetFlows() {
	for reg, h := range pc.held {
		reg.unfollowFlow(h)
	}
}

// waitResult is how awaitRelease ended.
type waitResult int

const (
	waitAgain   waitResult = iota // something was released: check again
	waitRoom                      // room holds
	waitStopped                   // h's actor stopped
	waitClosing                   // the connection closes
)

// awaitRelease waits once for the connection's protocol actors to release something, unless room holds already
// (checked after the credits of stopped actors are taken back), h's actor has stopped or the connection closes.
// Reader only.
func (pc *peerConn) awaitRelease(h *heldCredits, r *protocolRegistry, room func() bool) waitResult {
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
	case <-pc.halt:
		return waitClosing
	}
	return waitAgain
}

// acquire takes an inbound credit for a message of size payload bytes to h's protocol actor. It blocks (only this
// connection's reader) while protocol actors are behind, by count (InboundPending) or by bytes
// (InboundPendingBytes), and fails once the connection is closing (checked first: a select between a free credit
// and the closed channel would pick either) or h's actor has stopped.
func (pc *peerConn) acquire(h *heldCredits, r *protocolRegistry, size int64) bool {
	if pc.halted() {
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
		case <-pc.halt:
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
		switch pc.awaitRelease(h, r, fits) {
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
