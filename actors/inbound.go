package actors

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

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
	// passedOn counts the protocol actors it was passed on to that have not taken it yet (registration.passIn).
	passedOn atomic.Int32
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
func (m *Inbound) failStopped(protocol string) { m.failUnknown(stoppedText(protocol)) }

// failUnknown answers a request no actor will take with UNKNOWN_PROTOCOL and text, unless it was answered.
func (m *Inbound) failUnknown(text string) {
	if !m.answer() {
		return
	}
	m.pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: errorReply(m.Protocol, m.requestID,
		messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL, text)}})
}

// passedStoppedText is the text of the error reply to a request the actor of its protocol passed on to another
// protocol actor that had stopped (passOn).
func passedStoppedText(protocol string) string {
	return fmt.Sprintf("protocol %q passed the request on to a protocol actor that stopped", clipText(protocol, maxErrorText))
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
