package actors

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// SubscribeEvents calls fn with every node event (*messages.PeerConnected, *messages.PeerDisconnected,
// *messages.ProtocolStopped) until the returned function is called. Only events from then on: Peers lists the
// connections already up. The peer events are per connection, and for a moment a peer may have two (both sides
// dialed at once): a peer is connected from its first PeerConnected until a PeerDisconnected whose
// StillConnected is false; ConnId pairs each PeerDisconnected with its PeerConnected.
//
// fn runs on the publishing actor's goroutine: it must return quickly and never block. In particular it must not
// call the node's methods that wait for its actors (Register, Connect, Disconnect, Send, Request, Ping, Lookup,
// Ban, Close, ...): the actor they wait for may be the one running fn, and the call then deadlocks it until the
// call's context ends (for Register, which takes none, until Close), with every connection or protocol it serves.
// To act on an event, hand it to a goroutine of the application's (a channel it reads, or go). A panic in fn is
// recovered and logged. fn is not called for an event published after unsubscribe returned, nor, when unsubscribe is called
// on the publishing goroutine (from fn itself, or another subscriber's fn), for the event being handed out then.
// Called from another goroutine, unsubscribe does not wait for fn (it may be called from fn, and would wait for
// itself): a call under way, or one that was about to start, may still run after it returned. An application that
// frees what fn uses coordinates with fn itself, as with context.AfterFunc's stop. It may be called before Start.
func (n *Node) SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("subscribe events: %w: fn is nil", ErrInvalidArgument)
	}
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	// The event stream hands an event to the subscribers it held when the event came, unsubscribed since or not:
	// stopped keeps fn from being called for an event handed out after unsubscribe returned.
	var stopped atomic.Bool
	sub := n.events.Subscribe(func(ev any) {
		if stopped.Load() {
			return
		}
		switch e := ev.(type) {
		case *messages.PeerConnected:
			n.callSubscriber(fn, e)
		case *messages.PeerDisconnected:
			n.callSubscriber(fn, e)
		case *messages.ProtocolStopped:
			n.callSubscriber(fn, e)
		}
	})
	return func() {
		stopped.Store(true)
		n.events.Unsubscribe(sub)
	}, nil
}

// callSubscriber calls fn with ev, logging a panic rather than letting it fail the publishing actor (the peer
// manager, which a panic would restart, dropping every connection).
func (n *Node) callSubscriber(fn func(proto.Message), ev proto.Message) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error().Interface("panic", r).Str("stack", string(debug.Stack())).Msg("event subscriber panicked")
		}
	}()
	fn(ev)
}
