package actors

// Flow control of the messages to application protocols. Each side of a connection advertises in its handshake
// what it takes of the other's one-way messages and requests to its application protocols before their actors
// have processed them (session.Window: per protocol and for all of them, in messages and payload bytes). A sender
// keeps within the peer's window (sendWindows) and waits for WindowUpdates to send more, telling the peer with a
// WindowBlocked that it waits; the receiver (recvWindows) counts what each protocol actor holds and gives it back
// as the actor processes it: by halves of the window, and at once to a sender that waits. A slow
// protocol actor so holds back its own senders, in Send and Request, while the connection goes on reading for
// the node's other protocols, gossip and pings; and nothing is dropped. A peer that sends past the window, or
// gives back more than is outstanding, breaks the protocol: it is disconnected with reason FLOW_CONTROL.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// errFlowControl is a peer's breach of flow control.
var errFlowControl = errors.New("flow control breached")

// windowed tells whether messages to protocol count against the receiver's window: those to every protocol but the
// node's own (gossip and discovery, which the reader back-pressures as a whole). Both sides decide by name alone.
func windowed(protocol string) bool {
	return protocol != gossip.Protocol && protocol != routing.Protocol
}

// windowOf is the session.Window a node of cfg advertises: half of InboundPending and of InboundPendingBytes per
// application protocol, three quarters for all of them, so that one slow protocol actor leaves room to the
// others and the node's own protocols keep a quarter at least.
func windowOf(cfg *Config) session.Window {
	// At most session.MaxWindow each (a peer refuses more), and count/4*3 rather than count*3/4, which a huge
	// InboundPending (no limit, say) overflowed: the window went past MaxWindow or negative, and every handshake
	// was refused.
	count, budget := int64(cfg.InboundPending), int64(cfg.InboundPendingBytes)
	part := func(n, num, den int64) int64 { return min(session.MaxWindow, max(1, n/den*num+n%den*num/den)) }
	return session.Window{
		ProtocolMessages: part(count, 1, 2), ProtocolBytes: part(budget, 1, 2),
		AppMessages: part(count, 3, 4), AppBytes: part(budget, 3, 4),
	}
}

// flowCount is an amount of messages and of their payload bytes.
type flowCount struct{ messages, bytes int64 }

func (c *flowCount) add(o flowCount) { c.messages += o.messages; c.bytes += o.bytes }
func (c *flowCount) sub(o flowCount) { c.messages -= o.messages; c.bytes -= o.bytes }

// covers tells whether c holds at least o in both dimensions.
func (c flowCount) covers(o flowCount) bool { return c.messages >= o.messages && c.bytes >= o.bytes }

// fitsWindow is the rule both sides apply to a message of size payload bytes to a protocol with outstanding
// (sent, not given back) while the application's protocols together have app outstanding: within the protocol's
// window unless it has nothing outstanding, and within the application's unless nothing is outstanding at all (so
// a message of up to MaxMessageSize can always be sent, once the windows are empty). The receiver sees at most
// what the sender counts outstanding (its WindowUpdates may still be on the way), and each message either was
// checked against a total that counts every message outstanding when it was taken, or was taken when there was
// none: so a message the sender may send, the receiver takes, in any order the sender's goroutines queue them.
// (With the application's check skipped for any protocol that had nothing outstanding, a large message to an idle
// protocol passed a total that a message taken before it had counted without it, and the receiver disconnected
// an honest sender; and a few idle protocols could each take one message of MaxMessageSize, past
// InboundPendingBytes, stopping the connection's reader.)
func fitsWindow(w session.Window, outstanding, app flowCount, size int64) bool {
	protocolOK := outstanding == (flowCount{}) ||
		outstanding.messages+1 <= w.ProtocolMessages && outstanding.bytes+size <= w.ProtocolBytes
	appOK := app == (flowCount{}) || app.messages+1 <= w.AppMessages && app.bytes+size <= w.AppBytes
	return protocolOK && appOK
}

// sendWindows is the sender's side: what the peer's protocols hold of the node's messages, against the peer's
// window. Safe for concurrent use. Its map and channel are made on first use: most connections carry no
// application messages (3 200 of them took 1 MB in the 200-node simulation, made at once).
type sendWindows struct {
	window session.Window

	mu          sync.Mutex
	app         flowCount
	outstanding map[string]*flowCount // the protocols with something outstanding only
	granted     chan struct{}         // closed at the next grant; nil while no sender waits
	// signalled is set once a waiting sender told the peer (WindowBlocked) and cleared at the next grant: one
	// WindowBlocked per grant is enough however many senders wait.
	signalled bool
}

// tryTake counts a message of size bytes to protocol as outstanding if the window allows it; otherwise it returns
// a channel closed at the next grant, and whether to tell the peer that the node waits (once per grant).
func (s *sendWindows) tryTake(protocol string, size int64) (ok bool, granted <-chan struct{}, signal bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.outstanding[protocol]
	var cur flowCount
	if o != nil {
		cur = *o
	}
	if !fitsWindow(s.window, cur, s.app, size) {
		signal, s.signalled = !s.signalled, true
		if s.granted == nil {
			s.granted = make(chan struct{})
		}
		return false, s.granted, signal
	}
	if o == nil {
		if s.outstanding == nil {
			s.outstanding = make(map[string]*flowCount)
		}
		o = &flowCount{}
		s.outstanding[protocol] = o
	}
	one := flowCount{1, size}
	o.add(one)
	s.app.add(one)
	return true, nil, false
}

// take waits until the window allows a message of size bytes to protocol and counts it, or fails once ctx ends
// (ErrOverloaded: the peer's actor for the protocol is behind) or closing is closed (ErrPeerGone). It calls
// blocked (if not nil) each time the window is found short: first is set the first time, and signal when the peer
// is to be told that the node waits (WindowBlocked; it gives back what its actors processed only by halves of the
// window otherwise).
func (s *sendWindows) take(ctx context.Context, protocol string, size int64, closing <-chan struct{}, blocked func(first, signal bool)) error {
	for first := true; ; first = false {
		ok, granted, signal := s.tryTake(protocol, size)
		if ok {
			return nil
		}
		if blocked != nil {
			blocked(first, signal)
		}
		select {
		case <-granted:
		case <-closing:
			return ErrPeerGone
		case <-ctx.Done():
			return fmt.Errorf("%w: the peer's actor for %q had no room for the message: %w",
				ErrOverloaded, clipText(protocol, maxErrorText), ctx.Err())
		}
	}
}

// giveBack uncounts a message taken for protocol that was not sent after all.
func (s *sendWindows) giveBack(protocol string, size int64) {
	_ = s.grant(protocol, flowCount{1, size})
}

// grant gives back what the peer's WindowUpdate says it processed or refused; giving back more than is
// outstanding fails with errFlowControl.
func (s *sendWindows) grant(protocol string, g flowCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.outstanding[protocol]
	if g.messages < 0 || g.bytes < 0 || o == nil || !o.covers(g) {
		return fmt.Errorf("%w: %d messages and %d bytes given back for %q, more than outstanding",
			errFlowControl, g.messages, g.bytes, clipText(protocol, maxErrorText))
	}
	o.sub(g)
	s.app.sub(g)
	if *o == (flowCount{}) {
		delete(s.outstanding, protocol)
	}
	if s.granted != nil {
		close(s.granted)
	}
	s.granted, s.signalled = nil, false
	return nil
}

// recvWindows is the receiver's side: what the peer has outstanding with the node's application protocols, per
// protocol actor in its heldCredits (flow) and in all. Safe for concurrent use (the reader takes, the protocol
// actors release).
type recvWindows struct {
	window session.Window

	mu  sync.Mutex
	app flowCount
	// blocked is set when the peer said it waits for room (WindowBlocked) and nothing processed was left to give
	// back: the next release is given back at once.
	blocked bool
}

// recvFlow is what one protocol actor's messages from one peer stand at in the peer's window: outstanding (taken,
// not given back) and, of those, released (processed, not given back yet). Guarded by recvWindows.mu.
// dead is set once all was given back for an actor that stopped (reclaim): nothing more is counted there.
type recvFlow struct {
	outstanding, released flowCount
	dead                  bool
}

// flowTake is how recvWindows.take ended.
type flowTake int

const (
	taken    flowTake = iota // counted
	breached                 // past the window: the peer breaks flow control
	tooLate                  // the protocol's actor stopped and gave all back: refuse the message as to a stopped actor
)

// take counts a message of size bytes to f's protocol as outstanding.
func (r *recvWindows) take(f *recvFlow, size int64) flowTake {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case f.dead:
		return tooLate
	case !fitsWindow(r.window, f.outstanding, r.app, size):
		return breached
	}
	one := flowCount{1, size}
	f.outstanding.add(one)
	r.app.add(one)
	return taken
}

// release records that a message of size bytes to f's protocol was processed (or will never be) and returns what
// to give back now, if anything: all that was released, once it is half of the protocol's window in either
// dimension (as yamux's window updates), or at once with now or while the peer waits (blocked).
func (r *recvWindows) release(f *recvFlow, size int64, now bool) (flowCount, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.dead { // given back already
		return flowCount{}, false
	}
	f.released.add(flowCount{1, size})
	if !now && !r.blocked && 2*f.released.messages < r.window.ProtocolMessages &&
		2*f.released.bytes < r.window.ProtocolBytes {
		return flowCount{}, false
	}
	r.blocked = false
	g := f.released
	f.released = flowCount{}
	f.outstanding.sub(g)
	r.app.sub(g)
	return g, true
}

// grantOf is what to give back for one protocol.
type grantOf struct {
	protocol string
	g        flowCount
}

// flush takes, for a peer that waits for room (WindowBlocked), all that the flows have released, to be given back
// now; if there is none, the next release is (blocked). Messages are sent whole: with less than half the window
// released, one larger than what is left would wait for ever.
func (r *recvWindows) flush(held map[*registration]*heldCredits) []grantOf {
	r.mu.Lock()
	defer r.mu.Unlock()
	var grants []grantOf
	for _, h := range held {
		f := &h.flow
		if f.dead || f.released == (flowCount{}) {
			continue
		}
		grants = append(grants, grantOf{h.protocol, f.released})
		f.outstanding.sub(f.released)
		r.app.sub(f.released)
		f.released = flowCount{}
	}
	r.blocked = len(grants) == 0
	return grants
}

// reclaim gives back all that f's protocol has outstanding: its actor stopped, and processes nothing more.
func (r *recvWindows) reclaim(f *recvFlow) flowCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := f.outstanding
	f.outstanding, f.released, f.dead = flowCount{}, flowCount{}, true
	r.app.sub(g)
	return g
}

// reclaimFlow gives back to the peer all that its messages to h's stopped actor have outstanding; once only.
func (h *heldCredits) reclaimFlow() {
	h.pc.sendGrant(h.protocol, h.pc.in.reclaim(&h.flow))
}

// releaseFlow records that a message of size bytes held by h was processed, or will never be (now), and gives
// back what is due.
func (h *heldCredits) releaseFlow(size int64, now bool) {
	if g, ok := h.pc.in.release(&h.flow, size, now); ok {
		h.pc.sendGrant(h.protocol, g)
	}
}

// followFlow ties h to its registration, which gives back all that h has outstanding when its actor stops
// (reclaimFlows): the connection's reader does it only when it reads again, and a sender whose window the
// stopped actor held would not send again. Once the actor has stopped, h is given back at once.
func (reg *registration) followFlow(h *heldCredits) {
	reg.flowMu.Lock()
	if !reg.flowsReclaimed {
		if reg.flows == nil {
			reg.flows = make(map[*heldCredits]struct{})
		}
		reg.flows[h] = struct{}{}
		reg.flowMu.Unlock()
		return
	}
	reg.flowMu.Unlock()
	h.reclaimFlow()
}

// unfollowFlow unties h, whose connection has ended.
func (reg *registration) unfollowFlow(h *heldCredits) {
	reg.flowMu.Lock()
	defer reg.flowMu.Unlock()
	delete(reg.flows, h)
}

// reclaimFlows gives back to every peer all that its messages to reg's actor, which has stopped, have
// outstanding.
func (reg *registration) reclaimFlows() {
	reg.flowMu.Lock()
	flows := reg.flows
	reg.flows, reg.flowsReclaimed = nil, true
	reg.flowMu.Unlock()
	for h := range flows {
		h.reclaimFlow()
	}
}

// sendWindowed is sendDirect for a one-way message or request of size payload bytes: to an application protocol,
// it first waits for the peer's window (sendWindows.take).
func (n *Node) sendWindowed(ctx context.Context, pc *peerConn, protocol string, size int64, b []byte) error {
	if err := pc.fits(len(b)); err != nil { // at once: no window would ever let it through
		return err
	}
	if !windowed(protocol) {
		return n.sendDirect(pc, protocol, b)
	}
	err := pc.out.take(ctx, protocol, size, pc.closing, func(first, signal bool) {
		if first {
			n.stats.sendsHeldBack.Add(1)
		}
		if signal {
			pc.sendControl(&messages.Envelope{Body: &messages.Envelope_WindowBlocked{WindowBlocked: &messages.WindowBlocked{}}})
		}
	})
	switch {
	case errors.Is(err, ErrOverloaded):
		n.stats.sendsOverloaded.Add(1)
	case errors.Is(err, ErrPeerGone):
		err = pc.goneError()
	}
	if err != nil {
		return err
	}
	if err := n.sendApp(ctx, pc, protocol, b); err != nil {
		pc.out.giveBack(protocol, size)
		return err
	}
	return nil
}

// sendApp is sendDirect for the application's messages: they wait while the connection's queue holds half its
// limit or more (sendQueue.pushApp), until ctx ends (ErrOverloaded) or the connection closes (ErrPeerGone). Sends
// within a peer's window larger than this node's queue filled it, and the peer, reading all along, was
// disconnected as slow with the messages queued before (an audit's finding).
func (n *Node) sendApp(ctx context.Context, pc *peerConn, protocol string, b []byte) error {
	sent := n.stats.messagesOut.counter(protocol) // before the message leaves: see sendDirect
	for {
		room, err := pc.sendApp(b)
		switch {
		case err == nil:
			sent.Add(1)
			return nil
		case !errors.Is(err, errQueueBusy):
			return err
		}
		select {
		case <-room:
		case <-ctx.Done():
			n.stats.sendsOverloaded.Add(1)
			return fmt.Errorf("%w: the send queue to %s stayed half full: %w", ErrOverloaded, pc.id.Short(), ctx.Err())
		case <-pc.closing:
			return pc.goneError()
		}
	}
}

// grantBack tells the peer that size bytes of one message to protocol are given back at once: the message was
// refused before any actor held it. A protocol id over MaxProtocolIDLength, which no honest sender sends (Send
// refuses it), is not given back: its name would be echoed in full, and a peer could make the node send back
// about what it sends.
func (pc *peerConn) grantBack(protocol string, size int64) {
	if windowed(protocol) && len(protocol) <= MaxProtocolIDLength {
		pc.sendGrant(protocol, flowCount{1, size})
	}
}

// sendGrant sends a WindowUpdate giving back g for protocol.
func (pc *peerConn) sendGrant(protocol string, g flowCount) {
	if g == (flowCount{}) {
		return
	}
	pc.sendControl(&messages.Envelope{Body: &messages.Envelope_WindowUpdate{WindowUpdate: &messages.WindowUpdate{
		Protocol: protocol, Messages: uint64(g.messages), Bytes: uint64(g.bytes),
	}}})
}

// onWindowBlocked gives the peer, which waits for room, what the node's protocol actors processed (reader only).
func (pc *peerConn) onWindowBlocked() {
	for _, g := range pc.in.flush(pc.held) {
		pc.sendGrant(g.protocol, g.g)
	}
}

// onWindowUpdate takes a peer's WindowUpdate (reader only); one that gives back more than is outstanding
// disconnects the peer.
func (pc *peerConn) onWindowUpdate(u *messages.WindowUpdate) {
	g := flowCount{int64(min(u.GetMessages(), session.MaxWindow)), int64(min(u.GetBytes(), session.MaxWindow))}
	if err := pc.out.grant(u.GetProtocol(), g); err != nil {
		pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_FLOW_CONTROL, err.Error())
	}
}
