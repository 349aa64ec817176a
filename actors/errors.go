package actors

import (
	"errors"
	"fmt"

	"github.com/actormesh/actormesh/messages"
)

// Errors returned by the Node API. Callers branch on them with errors.Is.
var (
	// ErrClosed: the node is closed (or not started).
	ErrClosed = errors.New("node is closed")
	// ErrNotStarted: the call needs a started node.
	ErrNotStarted = errors.New("node is not started")
	// ErrAlreadyStarted: Start was called on a node started already.
	ErrAlreadyStarted = errors.New("node already started")
	// ErrUnknownPeer: the peer is not connected and its address is unknown. With discovery on, it wraps the error
	// of the lookup that failed to find it (ErrNotFound, which wraps routing.ErrNoAnswer when no node answered;
	// routing.ErrNoPeers; routing.ErrTooManyLookups; the context's error).
	ErrUnknownPeer = errors.New("unknown peer: not connected and no known address")
	// ErrPeerGone: the connection to the peer closed before the operation completed.
	ErrPeerGone = errors.New("peer disconnected")
	// ErrUnreachable: the peer's address could not be dialed (refused, no route, nothing answering), or the
	// connection failed during the handshake (the peer closed or reset it, timed out, or answered no valid
	// handshake); the transport's or the session's error is wrapped too. A peer that is another node than expected,
	// or of another network or protocol version, fails with the session's sentinel instead (session.ErrWrongPeer,
	// ErrNetworkMismatch, ErrVersionMismatch, ErrBadSignature).
	ErrUnreachable = errors.New("peer unreachable")
	// ErrSlowPeer: the peer's outbound queue is full; the peer was disconnected with reason SLOW_PEER.
	ErrSlowPeer = errors.New("peer too slow: outbound queue full, disconnected")
	// ErrMessageTooLarge: the encoded message exceeds MaxMessageSize, or the peer's own limit (told in its
	// handshake), which it would close the connection over.
	ErrMessageTooLarge = errors.New("message exceeds the maximum message size")
	// ErrRequestTimeout: no reply arrived before the deadline (the context's, or Config.RequestTimeout), the time
	// spent finding, dialing and shaking hands with the peer included. It also matches context.DeadlineExceeded.
	ErrRequestTimeout = errors.New("request timed out")
	// ErrUnknownProtocol: the remote node has no actor registered for the protocol.
	ErrUnknownProtocol = errors.New("remote has no such protocol")
	// ErrRemote: the remote protocol actor answered with an error (see *RemoteError).
	ErrRemote = errors.New("remote error")
	// ErrOverloaded: the peer's actor for the protocol stayed behind on the node's messages: its flow-control window
	// (see Config.InboundPending) stayed closed until the call's context ended, and nothing was sent; or the node's
	// send queue to the peer stayed half full (Config.SendQueueBytes) as long; or the remote refused a request as
	// overloaded (ERROR_CODE_OVERLOADED, as when its reply did not fit its queue; that error also matches ErrRemote).
	// A later retry may succeed.
	ErrOverloaded = errors.New("remote protocol actor overloaded")
	// ErrBadPayload: a payload could not be encoded or decoded (unknown message type, malformed bytes).
	ErrBadPayload = errors.New("bad payload")
	// ErrBadReply: a peer's reply could not be decoded (a type this node does not link, malformed bytes, no payload):
	// the peer's fault, where ErrBadPayload alone may be the caller's. It also matches ErrBadPayload.
	ErrBadReply = errors.New("bad reply")
	// ErrSelf: the node tried to connect to itself.
	ErrSelf = errors.New("peer is this node itself")
	// ErrTooManyPeers: no free outbound slot.
	ErrTooManyPeers = errors.New("too many peers")
	// ErrProtocolRegistered: Register was called twice for one protocol id.
	ErrProtocolRegistered = errors.New("protocol already registered")
	// ErrNotRegistered: SubscribeProtocol named a protocol with no actor registered on this node (through Register).
	ErrNotRegistered = errors.New("no protocol actor registered for the protocol")
	// ErrInvalidArgument: a call's argument can never work: an empty or non-UTF-8 protocol id or nil props for
	// Register, an empty protocol id for Send and Request, a nil callback for SubscribeEvents, a duration that is
	// not positive or an invalid IP address for Ban and BanIP.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotRequest: Reply was called on a one-way message.
	ErrNotRequest = errors.New("message is not a request")
	// ErrAnswered: Reply or ReplyError was called on a request answered already; nothing was sent.
	ErrAnswered = errors.New("request already answered")
	// ErrNodeFailed (Node.Err): the node closed itself because its peer manager, without which it can make or keep
	// no connection, failed too often for its supervisor to restart it again.
	ErrNodeFailed = errors.New("node failed")
	// ErrIdentityInUse (Start): another node with the same identity runs on the shared actor system
	// (Config.ActorSystem), whose actors are named after it.
	ErrIdentityInUse = errors.New("identity in use by another node on the actor system")
)

// RemoteError is the error of a request that the remote node answered with a failure. errors.Is matches it against
// ErrUnknownProtocol, ErrBadPayload, ErrOverloaded (OVERLOADED, which also matches ErrRemote) or ErrRemote according
// to its Code. Protocol and Message are the peer's texts, clipped to 256 bytes, their control characters replaced.
type RemoteError struct {
	Peer     string
	Protocol string
	Code     messages.ErrorCode
	Message  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("request %s to %s failed: %s: %s", e.Protocol, e.Peer, e.Code, e.Message)
}

// Is maps the remote error code to the package's sentinel errors.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL:
		return target == ErrUnknownProtocol
	case messages.ErrorCode_ERROR_CODE_BAD_PAYLOAD:
		return target == ErrBadPayload
	case messages.ErrorCode_ERROR_CODE_OVERLOADED:
		return target == ErrOverloaded || target == ErrRemote
	default:
		return target == ErrRemote
	}
}
