package actors

import (
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// SubscribeEvents calls fn with every node event (*messages.PeerConnected, *messages.PeerDisconnected) until the
// returned function is called. fn runs on the publishing actor's goroutine: it must return quickly and never block.
func (n *Node) SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error) {
	if _, err := n.peerManager(); err != nil {
		return nil, err
	}
	sub := n.system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PeerConnected:
			fn(e)
		case *messages.PeerDisconnected:
			fn(e)
		}
	})
	return func() { n.system.EventStream.Unsubscribe(sub) }, nil
}
