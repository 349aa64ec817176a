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
// connections already up. fn runs on the publishing actor's goroutine: it must return quickly and never block.
// A panic in fn is recovered and logged. Once unsubscribe returns, fn is not called again, not even for an event
// being handed out to the subscribers at that moment (unsubscribe may be called from fn itself, or from another
// subscriber's fn); only a call of fn already under way may still finish. unsubscribe does not wait for it.
// It may be called before Start.
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
	// stopped keeps fn from being called after unsubscribe returned.
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
