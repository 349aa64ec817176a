package actors

import (
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// SubscribeEvents calls fn with every node event (*messages.PeerConnected, *messages.PeerDisconnected) until the
// returned function is called. fn runs on the publishing actor's goroutine: it must return quickly and never block.
// It may be called before Start.
func (n *Node) SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error) {
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	sub := n.events.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PeerConnected:
			fn(e)
		case *messages.PeerDisconnected:
			fn(e)
		}
	})
	return func() { n.events.Unsubscribe(sub) }, nil
}
