package gossip

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// builder accumulates an Output, with one Control per peer.
type builder struct {
	out Output
	ctl map[session.NodeID]*Control
}

func (b *builder) control(to session.NodeID) *Control {
	if c := b.ctl[to]; c != nil {
		return c
	}
	if b.ctl == nil {
		b.ctl = make(map[session.NodeID]*Control)
	}
	c := &Control{}
	b.ctl[to] = c
	b.out.Send = append(b.out.Send, Send{To: to, Control: c})
	return c
}

func (b *builder) message(to session.NodeID, m *Message) {
	b.out.Send = append(b.out.Send, Send{To: to, Msg: m})
}

// result returns the Output with all control ahead of the messages, each kind in the order it was added.
func (b *builder) result() Output {
	if len(b.ctl) > 0 {
		slices.SortStableFunc(b.out.Send, func(x, y Send) int {
			switch {
			case (x.Control == nil) == (y.Control == nil):
				return 0
			case x.Control != nil:
				return -1
			default:
				return 1
			}
		})
	}
	return b.out
}
