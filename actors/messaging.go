package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Inbound is what a protocol actor receives for each message a peer sent to its protocol: the typed payload and
// who sent it. A request must be answered with Reply or ReplyError (or the requester times out). While a request
// waits for its answer, the connection it came on is not closed as idle (Config.TransientIdleTimeout), for up to
// Config.IdleTimeout without other messages.
type Inbound struct {
	// From is the sender's NodeID, authenticated by the handshake.
	From session.NodeID
	// Protocol is the protocol id the message was sent to.
	Protocol string
	// Payload is the decoded message; its Go type is the one the sender used.
	Payload proto.Message
	// ReceivedAt is when the connection read the message.
	ReceivedAt time.Time

	requestID uint64
	pc        *peerConn
	held      *heldCredits
	size      int64 // the payload bytes its credit holds
	node      *Node
	tracked   bool // registration.track counted it, before the hand-over to the actor
	released  atomic.Bool
	answered  atomic.Bool
}

// Sender returns the peer that sent the message (From).
func (m *Inbound) Sender() session.NodeID { return m.From }

// Message returns the typed payload (Payload).
func (m *Inbound) Message() proto.Message { return m.Payload }

// RemoteAddr returns the address of the connection's other end the message came over ("" if unknown).
func (m *Inbound) RemoteAddr() string {
	if m.pc == nil {
		return ""
	}
	return m.pc.sc.RemoteAddr().String()
}

// IsRequest tells whether the sender waits for a reply.
func (m *Inbound) IsRequest() bool { return m.requestID != 0 }

// Reply answers a request with msg. It never blocks: the reply is queued on the sender's connection. While that
// connection's send queue (Config.SendQueueBytes; gossip and control included) holds half its limit or more, or
// has no room for the reply, the requester gets an ERROR_CODE_OVERLOADED error instead (ErrOverloaded, retry later)
// and Reply fails with ErrOverloaded: many large replies to a peer's concurrent requests filled the queue, and the
// peer was disconnected as slow. A request answered already (by Reply or ReplyError) fails with ErrAnswered,
// nothing sent: the requester takes the first answer only.
func (m *Inbound) Reply(msg proto.Message) error {
	if !m.IsRequest() {
		return ErrNotRequest
	}
	b, err := encodeDirect(m.Protocol, messages.DirectKind_DIRECT_KIND_RESPONSE, m.requestID, msg)
	if err != nil {
		return err
	}
	if err := m.pc.fits(len(b)); err != nil {
		return err
	}
	if !m.answer() {
		return ErrAnswered
	}
	sent := m.node.stats.messagesOut.counter(m.Protocol) // before the reply leaves: see sendDirect
	_, err = m.pc.sendApp(b)
	switch {
	case err == nil:
		sent.Add(1)
	case errors.Is(err, errQueueBusy):
		m.node.stats.sendsOverloaded.Add(1)
		m.pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: errorReply(m.Protocol, m.requestID,
			messages.ErrorCode_ERROR_CODE_OVERLOADED, overloadedReplyText)}})
		return fmt.Errorf("%w: the send queue to %s is half full: the requester was told to retry", ErrOverloaded, m.pc.id.Short())
	}
	return err
}

// overloadedReplyText is the text of the error reply to a request whose reply did not fit the send queue (Reply).
const overloadedReplyText = "the replier's send queue to you is full: retry later"

// answer records that the request was answered: the connection no longer waits for it (peerConn.owes). It
// reports false if it was answered already (another answer, maybe at once from another goroutine).
func (m *Inbound) answer() bool {
	if m.answered.Swap(true) {
		return false
	}
	if m.held != nil {
		m.held.reg.untrack(m)
	}
	for { // never below zero, even if a copy of m answers too
		v := m.pc.owed.Load()
		if v <= 0 || m.pc.owed.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// ReplyError answers a request with an application error; the requester gets a *RemoteError matching ErrRemote.
// A request answered already fails with ErrAnswered, nothing sent.
func (m *Inbound) ReplyError(replyErr error) error {
	if !m.IsRequest() {
		return ErrNotRequest
	}
	text := "" // a nil error is an application error without text
	if replyErr != nil {
		text = replyErr.Error()
	}
	b, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{
		Direct: errorReply(m.Protocol, m.requestID, messages.ErrorCode_ERROR_CODE_APPLICATION, text),
	}})
	if err != nil {
		return err
	}
	if !m.answer() {
		return ErrAnswered
	}
	sent := m.node.stats.messagesOut.counter(m.Protocol) // before the reply leaves: see sendDirect
	if err := m.node.sendEncoded(m.pc, b); err != nil {
		return err
	}
	sent.Add(1)
	return nil
}

// failStopped answers a request its actor will never take (it stopped for good) as a request to a protocol the
// node does not serve, the answer it would get from now on.
func (m *Inbound) failStopped(protocol string) {
	if !m.answer() {
		return
	}
	m.pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: errorReply(m.Protocol, m.requestID,
		messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL, stoppedText(protocol))}})
}

// stoppedText is the text of the error reply to a request for a protocol whose actor stopped.
func stoppedText(protocol string) string {
	return fmt.Sprintf("protocol %q stopped on this node", clipText(protocol, maxErrorText))
}

// protocolFailedText is the text of the error reply to a request its protocol actor panicked on.
const protocolFailedText = "the protocol actor failed on the request"

// done ends the actor's handling of the message: a request it panicked on (handled unset) and did not answer is
// answered with an application error, then the credit is released. A request left unanswered is no longer
// tracked (registration.requests covers a request's time in the mailbox, for drain): tracked until answered, each
// one a peer sent to a protocol that never answers (the relay's, or a one-way protocol of the application's) held
// its payload and connection for good, 64 MiB after 128 requests of 512 KiB from a peer long gone.
func (m *Inbound) done(handled *bool) {
	if !*handled && m.IsRequest() && !m.answered.Load() {
		_ = m.ReplyError(errors.New(protocolFailedText))
	}
	if m.IsRequest() && m.held != nil {
		m.held.reg.untrack(m)
	}
	m.release()
}

// release gives the message's credit and window share back, once: an Inbound passed on to another protocol actor
// is released by the credit middleware of both, maybe at once (a plain flag was a data race, and a double release
// would give back twice: an audit's finding).
func (m *Inbound) release() {
	if m.released.CompareAndSwap(false, true) {
		if m.tracked {
			m.held.reg.settle()
		}
		m.held.n.Add(-1) // before the credit: the connection's credits never fall below what its holders count
		m.held.bytes.Add(-m.size)
		m.pc.release(m.size)
		if windowed(m.Protocol) { // after the credit: the peer sends more once there is room for it
			m.held.releaseFlow(m.size, false)
		}
	}
}

// maxErrorText bounds the protocol name and the text of an error reply, in bytes: the name is the peer's to choose
// (up to MaxMessageSize), and repeating it, quoted, built replies over the limit, which the writer then refused.
const maxErrorText = 256

// errorReply builds the error reply to request requestID, its protocol name and text clipped to maxErrorText.
func errorReply(protocol string, requestID uint64, code messages.ErrorCode, msg string) *messages.Direct {
	return &messages.Direct{
		Protocol: clipText(protocol, maxErrorText), Kind: messages.DirectKind_DIRECT_KIND_ERROR, RequestId: requestID,
		Error: &messages.RemoteError{Code: code, Message: clipText(msg, maxErrorText)},
	}
}

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

// requestResult is the outcome of a request: an error, or a reply's payload still encoded (typeURL and value), which
// the requester decodes (see requestTable.complete).
type requestResult struct {
	typeURL string
	value   []byte
	err     error
}

// decode returns the reply's payload, decoded.
func (r requestResult) decode() (proto.Message, error) {
	if r.err != nil || r.typeURL == "" {
		return nil, r.err
	}
	m, err := decodePayload(r.typeURL, r.value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrBadPayload, ErrBadReply, err)
	}
	return m, nil
}

type pendingRequest struct {
	pc *peerConn
	ch chan requestResult
	// ping is set for an API ping's entry, which only a pong completes; a request's only a reply does.
	ping bool
}

// requestTable tracks requests and pings awaiting a reply. Entries are removed by the waiter; replies from a peer
// other than the one asked, and answers of the wrong kind (a pong carrying a request's id, a reply carrying a
// ping's), are ignored. Its ids count from 1 and never reach keepaliveNonce's bit, so that a keepalive's pong is
// never taken for an API ping's.
type requestTable struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*pendingRequest
}

func newRequestTable() *requestTable { return &requestTable{m: make(map[uint64]*pendingRequest)} }

// add registers a request on pc (a ping with ping set) and returns its id and the channel of its answer.
func (t *requestTable) add(pc *peerConn, ping bool) (uint64, <-chan requestResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	ch := make(chan requestResult, 1)
	if pc.requestsFailed != nil {
		// The connection was unregistered between the caller's connFor and this: its answer would never come, and
		// the request waited out its timeout instead of failing at once as those failConn failed.
		ch <- requestResult{err: pc.requestsFailed}
	} else {
		t.m[t.next] = &pendingRequest{pc: pc, ch: ch, ping: ping}
	}
	pc.inflight.Add(1)
	pc.used.Store(true)
	return t.next, ch
}

// remove ends a request made with add on pc (called once by its waiter, answered or not).
func (t *requestTable) remove(id uint64, pc *peerConn) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
	pc.inflight.Add(-1)
}

// resolve hands r to the waiter of entry id if pc's peer was asked and the entry is a ping exactly when ping is
// set. It reports false when the entry is there but of the other kind (the answer is dropped); a late answer
// (no entry) or one from another peer is dropped too.
func (t *requestTable) resolve(pc *peerConn, id uint64, ping bool, r requestResult) bool {
	t.mu.Lock()
	p, ok := t.m[id]
	if !ok || p.pc.id != pc.id {
		t.mu.Unlock()
		return true
	}
	if p.ping != ping {
		t.mu.Unlock()
		return false
	}
	delete(t.m, id)
	t.mu.Unlock()
	if r.value != nil { // the reader's, reused: copied only for the request that waits for it
		r.value = bytes.Clone(r.value)
	}
	p.ch <- r
	return true
}

// complete hands a reply to its requester. It runs on the connection's reader, so the payload is only copied here
// and decoded by the requester: decoding a discovery reply's records took the reader's stack from 4 to 8 KiB, for
// the life of the connection, on about one connection in five. It reports false when d's id is a ping's.
func (t *requestTable) complete(pc *peerConn, d *direct) bool {
	var r requestResult
	switch {
	case d.kind == messages.DirectKind_DIRECT_KIND_ERROR:
		// The peer's text, clipped as every text a peer chooses (a goodbye's detail): an application logging the
		// error wrote whatever the peer sent, up to MaxMessageSize, in one line (an audit's finding).
		r.err = &RemoteError{Peer: pc.id.Short(), Protocol: clipText(d.protocol, maxErrorText), Code: d.err.GetCode(),
			Message: clipText(d.err.GetMessage(), maxErrorText)}
	case !d.hasPayload:
		r.err = fmt.Errorf("%w: %w: %w", ErrBadPayload, ErrBadReply, errMissingPayload)
	default:
		r.typeURL, r.value = d.typeURL, d.value // d and its value are the reader's, reused: resolve copies it
	}
	return t.resolve(pc, d.requestID, false, r)
}

// completePong hands a pong to the API ping that sent nonce. It reports false when nonce is a request's id.
func (t *requestTable) completePong(pc *peerConn, nonce uint64) bool {
	return t.resolve(pc, nonce, true, requestResult{})
}

// failConn fails every request waiting on the given connection, and those added to it later.
func (t *requestTable) failConn(pc *peerConn, err error) {
	t.mu.Lock()
	pc.requestsFailed = err // requests added from now on fail at once
	var failed []*pendingRequest
	for id, p := range t.m {
		if p.pc == pc {
			failed = append(failed, p)
			delete(t.m, id)
		}
	}
	t.mu.Unlock()
	for _, p := range failed {
		p.ch <- requestResult{err: err}
	}
}
