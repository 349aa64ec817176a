package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Send delivers msg to the protocol actor registered for protocol on peer. It returns once the message is queued
// on the peer's connection, dialing the peer first when it is not connected (a connection that is closing, after
// a Disconnect or the peer's goodbye, counts as none: the dial waits for it to end): at its known address, or where a
// lookup finds it when none is known or the known one fails (with discovery on). It waits
// while the peer's actor for the protocol holds its share of what it takes of the node's messages (flow control,
// session.Window: half of the peer's InboundPending and InboundPendingBytes by default), or while this node's send
// queue to the peer (Config.SendQueueBytes) holds half its limit or has no room for the message, until ctx ends or, without a
// deadline on ctx, for Config.RequestTimeout; then it fails with ErrOverloaded, and the message is not sent.
// A slow actor so holds back its senders; nothing sent is dropped for it. A one-way message is not acknowledged:
// a peer that serves no such protocol (counted in its Stats.MessagesIn[UnknownProtocol]) or refuses the payload's
// type (Accepts; counted under the protocol) drops it, as does one whose protocol actor stops with it in its
// mailbox or that is closing the connection (each counted in the peer's Stats.InboundDropped by reason); use
// Request to learn the outcome. An empty protocol id
// fails with ErrInvalidArgument, a nil msg with ErrBadPayload and a message over MaxMessageSize with
// ErrMessageTooLarge, before any dial; one over the peer's own limit (told in its handshake) fails with
// ErrMessageTooLarge too, without waiting for the peer's window. The messages of one goroutine to a protocol arrive
// in the order sent while one connection carries them; across a reconnection, or the tie-break of two connections
// dialed at once, later ones may arrive first (order holds within a go-libp2p stream likewise, not across streams).
func (n *Node) Send(ctx context.Context, peer session.NodeID, protocol string, msg proto.Message) error {
	if err := checkOutgoing(protocol, msg); err != nil {
		return err
	}
	b, size, err := encodeDirectSized(protocol, messages.DirectKind_DIRECT_KIND_ONEWAY, 0, msg)
	if err != nil {
		return err
	}
	if len(b) > n.cfg.MaxMessageSize { // before any dial
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(b), n.cfg.MaxMessageSize)
	}
	pc, err := n.connFor(ctx, peer, true)
	if err != nil {
		return err
	}
	ctx, cancel := n.withRequestTimeout(ctx)
	defer cancel()
	err = n.sendWindowed(ctx, pc, protocol, size, b)
	if winner := n.replacement(ctx, peer, true, pc, err); winner != nil {
		err = n.sendWindowed(ctx, winner, protocol, size, b)
	}
	return err
}

// replacement returns the connection to peer that replaced pc, when err, a Send's or Request's, says pc closed as a
// duplicate with the message not queued (ErrPeerGone): the peer is still connected, over the connection that won a
// simultaneous dial's tie-break (or that the peer dialed anew), and the message goes there, once. Those Sends failed
// with ErrPeerGone while the peer stayed connected (a few in each tie-break that came in the middle of a burst). It
// returns nil otherwise, or when no connection to peer can be had.
func (n *Node) replacement(ctx context.Context, peer session.NodeID, app bool, pc *peerConn, err error) *peerConn {
	if !errors.Is(err, ErrPeerGone) || !pc.closedAsDuplicate() {
		return nil
	}
	winner, werr := n.connFor(ctx, peer, app)
	if werr != nil || winner == pc {
		return nil
	}
	return winner
}

// Request sends msg to protocol on peer and waits for the typed reply. Without a deadline on ctx,
// Config.RequestTimeout applies. Errors: ErrRequestTimeout, ErrPeerGone, ErrUnknownProtocol, ErrRemote (a
// *RemoteError), ErrOverloaded (the peer's actor for the protocol stayed behind, or this node's send queue to the
// peer stayed half full: see Send; or the peer's queue to this node was: an OVERLOADED error), ErrBadReply,
// ErrUnknownPeer, ErrSlowPeer, ErrClosed; as Send's, ErrInvalidArgument and ErrBadPayload before any dial,
// ErrMessageTooLarge, and the dial's: ErrSelf, ErrBanned, ErrUnreachable, or the session's sentinel for a peer of
// another identity, network or version (session.ErrWrongPeer, ErrNetworkMismatch, ErrVersionMismatch).
func (n *Node) Request(ctx context.Context, peer session.NodeID, protocol string, msg proto.Message) (proto.Message, error) {
	return n.request(ctx, peer, protocol, msg, true)
}

// request is Request; app tells whether the application makes it (see connFor).
func (n *Node) request(ctx context.Context, peer session.NodeID, protocol string, msg proto.Message, app bool) (proto.Message, error) {
	if err := checkOutgoing(protocol, msg); err != nil {
		return nil, err
	}
	ctx, cancel := n.withRequestTimeout(ctx)
	defer cancel()
	pc, err := n.connFor(ctx, peer, app)
	if err != nil {
		return nil, asRequestTimeout(err)
	}
	ch, done, err := n.sendRequest(ctx, pc, protocol, msg)
	if winner := n.replacement(ctx, peer, app, pc, err); winner != nil {
		ch, done, err = n.sendRequest(ctx, winner, protocol, msg)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return n.await(ctx, ch, fmt.Sprintf("request %s to %s", protocol, peer.Short()))
}

// sendRequest queues a request of msg to protocol on pc and returns the channel of its answer and done, which
// forgets the request once it is answered or given up; on an error the request is forgotten already.
func (n *Node) sendRequest(ctx context.Context, pc *peerConn, protocol string, msg proto.Message) (<-chan requestResult, func(), error) {
	id, ch := n.requests.add(pc, false)
	done := func() { n.requests.remove(id, pc) }
	b, size, err := encodeDirectSized(protocol, messages.DirectKind_DIRECT_KIND_REQUEST, id, msg)
	if err == nil {
		err = n.sendWindowed(ctx, pc, protocol, size, b)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return ch, done, nil
}

// errControlInProtocol refuses a protocol id holding a control character: the texts peers send back about it (an
// error reply's protocol) have them replaced (clipText), and the reply was then counted as of an unknown protocol (a
// review's finding).
var errControlInProtocol = errors.New("protocol id holds a control character")

// checkOutgoing refuses what Send and Request could never deliver, before they dial: an empty protocol id, which
// no node can serve (Register refuses it; the peer dropped the message as of an unknown protocol), and a nil
// message.
func checkOutgoing(protocol string, msg proto.Message) error {
	if protocol == "" {
		return fmt.Errorf("%w: empty protocol id", ErrInvalidArgument)
	}
	if len(protocol) > MaxProtocolIDLength {
		return fmt.Errorf("%w: a protocol id of %d bytes, limit %d", ErrInvalidArgument, len(protocol), MaxProtocolIDLength)
	}
	if strings.ContainsFunc(protocol, unicode.IsControl) {
		return fmt.Errorf("%q: %w: %w", protocol, ErrInvalidArgument, errControlInProtocol)
	}
	if msg == nil {
		return fmt.Errorf("%w: nil message", ErrBadPayload)
	}
	return nil
}

// Ping sends a ping to a connected (or dialable) peer and returns the round-trip time. Without a deadline on ctx,
// Config.RequestTimeout applies; running out of time fails with ErrRequestTimeout, as Request does.
func (n *Node) Ping(ctx context.Context, peer session.NodeID) (time.Duration, error) {
	ctx, cancel := n.withRequestTimeout(ctx)
	defer cancel()
	pc, err := n.connFor(ctx, peer, true)
	if err != nil {
		return 0, asRequestTimeout(err)
	}
	id, ch := n.requests.add(pc, true)
	defer n.requests.remove(id, pc)
	b, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: id}}})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := pc.send(b); err != nil {
		return 0, err
	}
	if _, err := n.await(ctx, ch, "ping "+peer.Short()); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// asRequestTimeout marks err as ErrRequestTimeout too when the time of a Request or Ping ran out (its context's
// deadline, or Config.RequestTimeout) before it had a connection: while it looked the peer up, dialed or shook
// hands.
func asRequestTimeout(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrRequestTimeout) {
		return fmt.Errorf("%w: %w", ErrRequestTimeout, err)
	}
	return err
}

func (n *Node) withRequestTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.RequestTimeout)
}

func (n *Node) await(ctx context.Context, ch <-chan requestResult, what string) (proto.Message, error) {
	select {
	case r := <-ch:
		return r.decode()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: %w: %w", what, ErrRequestTimeout, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", what, ctx.Err())
	case <-n.closed:
		return nil, ErrClosed
	}
}

// sendDirect is sendEncoded for a direct message of protocol, counted in the node's stats once queued.
func (n *Node) sendDirect(pc *peerConn, protocol string, b []byte) error {
	// The protocol's counter exists before the message leaves: a reply may come back (and be counted only for
	// protocols the node sent to, see onDirect) before this goroutine runs again.
	sent := n.stats.messagesOut.counter(protocol)
	err := n.sendEncoded(pc, b)
	if err == nil {
		sent.Add(1)
	}
	return err
}

func (n *Node) sendEncoded(pc *peerConn, b []byte) error {
	pc.touch()
	pc.used.Store(true)
	if err := pc.fits(len(b)); err != nil {
		return err
	}
	return pc.send(b)
}

// fits checks that a message of size bytes may go to the connection's peer: within the node's MaxMessageSize and
// the peer's own limit, which it told in its handshake (a larger message would have the peer close the connection,
// taking the messages queued with it).
func (pc *peerConn) fits(size int) error {
	switch limit := pc.sc.MaxSendSize(); {
	case size <= limit:
		return nil
	case limit < pc.sc.MaxMessageSize():
		return fmt.Errorf("%w: %d bytes, the limit of peer %s is %d", ErrMessageTooLarge, size, pc.id.Short(), limit)
	default:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, size, limit)
	}
}

// route finds the protocol actor of a message or request, the credits the connection's messages to it hold and the
// counter of the messages its protocol received (nil, nil if no actor serves it). A reader's cache (d.route) keeps
// them for the protocol it routed last, sparing the registry's and the counters' locks and maps.
func (n *Node) route(pc *peerConn, d *direct) (*heldCredits, *atomic.Uint64) {
	c := d.route
	if c == nil {
		c = &protocolRoute{}
	}
	reg := n.protocols.route(c, d.protocol)
	if reg == nil {
		return nil, nil
	}
	if c.held == nil { // the registry changed or another protocol was routed last
		c.received = n.stats.messagesIn.counter(d.protocol)
		c.held = pc.heldFor(reg, d.protocol, n.protocols.gen.Load())
	}
	return c.held, c.received
}

// onDirect implements connHandler: it runs on the connection's reader goroutine.
func (n *Node) onDirect(pc *peerConn, d *direct) {
	pc.touch()
	if d.kind == messages.DirectKind_DIRECT_KIND_RESPONSE || d.kind == messages.DirectKind_DIRECT_KIND_ERROR {
		n.onReply(pc, d)
		return
	}
	// The refusals are built out of line (refuseDirect): this runs on every connection's reader, whose stack the
	// runtime sizes every goroutine's first stack by: two more formatted refusals here took the goroutine stacks
	// of the 200-node sim from 25 to 36 MiB (stop 41).
	size := int64(len(d.value))
	held, received := n.route(pc, d)
	if held == nil {
		n.stats.messagesIn.inc(UnknownProtocol)
		pc.grantBack(d.protocol, size)
		n.refuseDirect(pc, d, refusedUnknown, nil)
		return
	}
	received.Add(1)
	if d.hasPayload && !held.reg.accepts.has(d.typeURL) {
		pc.grantBack(d.protocol, size)
		n.refuseDirect(pc, d, refusedType, held.reg.accepts)
		return
	}
	win := windowed(d.protocol)
	if win {
		switch pc.in.take(&held.flow, size) {
		case breached:
			n.stats.inboundDropped[dropClosing].Add(1)
			pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_FLOW_CONTROL,
				fmt.Sprintf("a message of %d bytes to %q past the inbound window", size, clipText(d.protocol, maxErrorText)))
			return
		case tooLate: // its actor stopped since the message was routed
			pc.grantBack(d.protocol, size)
			n.refuseDirect(pc, d, refusedStopped, nil)
			return
		}
	}
	payload, err := d.payload()
	if err != nil {
		if win {
			held.releaseFlow(size, true)
		}
		n.refuseDirect(pc, d, refusedPayload, err)
		return
	}
	if !pc.acquire(held, n.protocols, size) { // the window this message holds is given back with the actor's (reclaim)
		if held.reg.stopped() && !pc.halted() { // the actor stopped while the message waited for a credit
			n.refuseDirect(pc, d, refusedStopped, nil)
		} else {
			n.stats.inboundDropped[dropClosing].Add(1)
		}
		return
	}
	isRequest := d.kind == messages.DirectKind_DIRECT_KIND_REQUEST
	var reqID uint64
	if isRequest {
		reqID = d.requestID
		pc.owed.Add(1) // until Reply or ReplyError
	}
	in := &Inbound{
		From: pc.id, Protocol: d.protocol, Payload: payload, ReceivedAt: time.Now(),
		requestID: reqID, pc: pc, held: held, size: size, node: n,
	}
	if !held.reg.track(in) { // the actor stopped since the credit was taken
		if isRequest {
			in.answer()
		}
		in.release()
		n.refuseDirect(pc, d, refusedStopped, nil)
		return
	}
	n.system.Root.Send(held.reg.pid, in)
}

// onReply completes the request a response or an error reply answers.
func (n *Node) onReply(pc *peerConn, d *direct) {
	// The protocol name of a reply is the remote's to choose: it is counted only if the node sent to it.
	if n.stats.messagesOut.has(d.protocol) {
		n.stats.messagesIn.inc(d.protocol)
	} else {
		n.stats.messagesIn.inc(UnknownProtocol)
	}
	if !n.requests.complete(pc, d) {
		n.log.Debug().Str("peer", pc.id.Short()).Uint64("id", d.requestID).Msg("reply to a ping: dropped")
	}
}

// refusal is why a peer's direct message is not handed to a protocol actor.
type refusal int

const (
	refusedUnknown refusal = iota // no actor serves the protocol
	refusedStopped                // its actor stopped
	refusedType                   // the payload's type is not one the protocol accepts (detail: *acceptedTypes)
	refusedPayload                // the payload cannot be decoded (detail: error)
)

// refuseDirect logs a refused message and answers it if it is a request. Out of line on purpose (see onDirect).
//
//go:noinline
func (n *Node) refuseDirect(pc *peerConn, d *direct, why refusal, detail any) {
	protocol := clipText(d.protocol, maxErrorText)
	code, msg := messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL, fmt.Sprintf("no protocol %q on this node", protocol)
	drop := dropUnknown
	switch why {
	case refusedStopped:
		drop, msg = dropStopped, stoppedText(d.protocol)
	case refusedType:
		drop = dropType
		code = messages.ErrorCode_ERROR_CODE_BAD_PAYLOAD
		msg = clipText(fmt.Sprintf("protocol %q takes %s, not %s", protocol, detail.(*acceptedTypes).names,
			strings.TrimPrefix(d.typeURL, typeURLPrefix)), maxErrorText)
	case refusedPayload:
		drop, code, msg = dropPayload, messages.ErrorCode_ERROR_CODE_BAD_PAYLOAD, detail.(error).Error()
	}
	n.stats.inboundDropped[drop].Add(1)
	n.log.Debug().Str("peer", pc.id.Short()).Str("protocol", protocol).Str("code", code.String()).Msg(msg)
	if d.kind == messages.DirectKind_DIRECT_KIND_REQUEST {
		pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: errorReply(d.protocol, d.requestID, code, msg)}})
	}
}

// onPong implements connHandler.
func (n *Node) onPong(pc *peerConn, nonce uint64) {
	if !n.requests.completePong(pc, nonce) {
		n.log.Debug().Str("peer", pc.id.Short()).Uint64("nonce", nonce).Msg("pong to a request: dropped")
	}
}
