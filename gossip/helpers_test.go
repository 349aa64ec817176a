package gossip

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

const topicA = "a"

var t0 = time.Unix(1_700_000_000, 0)

func nid(i int) session.NodeID {
	var id session.NodeID
	id[0], id[1], id[31] = byte(i), byte(i>>8), 1
	return id
}

func newTestRouter(t testing.TB, cfg Config) *Router {
	t.Helper()
	r, err := NewRouter(cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// addPeers adds peers first..last, subscribed to topic.
func addPeers(t testing.TB, r *Router, topic string, first, last int) {
	t.Helper()
	for i := first; i <= last; i++ {
		if err := r.AddPeer(nid(i)); err != nil {
			t.Fatal(err)
		}
		if err := r.PeerSubscribed(nid(i), topic); err != nil {
			t.Fatal(err)
		}
	}
}

// joined returns a router joined to topicA with peers 1..n, the first min(n, D) of them grafted eagerly.
func joined(t testing.TB, cfg Config, n int) *Router {
	t.Helper()
	r := newTestRouter(t, cfg)
	addPeers(t, r, topicA, 1, n)
	r.Join(t0, topicA)
	return r
}

// msg returns a message of topicA published at t0.
func msg(data string) *Message {
	return &Message{Topic: topicA, Data: []byte(data), OriginTime: t0.UnixNano()}
}

// sendsTo returns the control and the messages of out for one peer.
func sendsTo(out Output, to session.NodeID) (*Control, []*Message) {
	var c *Control
	var msgs []*Message
	for _, s := range out.Send {
		if s.To != to {
			continue
		}
		if s.Control != nil {
			c = s.Control
		}
		if s.Msg != nil {
			msgs = append(msgs, s.Msg)
		}
	}
	return c, msgs
}

// sorted returns ids in increasing order.
func sorted(ids []session.NodeID) []session.NodeID {
	return slices.SortedFunc(slices.Values(ids), func(a, b session.NodeID) int { return bytes.Compare(a[:], b[:]) })
}

// receivers returns the peers out sends messages to.
func receivers(out Output) []session.NodeID {
	var ids []session.NodeID
	for _, s := range out.Send {
		if s.Msg != nil {
			ids = append(ids, s.To)
		}
	}
	return ids
}

// receive runs HandleMessage and, for a new message, Validated with v.
func receive(t testing.TB, r *Router, now time.Time, from session.NodeID, m *Message, v Verdict) (Output, Status) {
	t.Helper()
	out, st := r.HandleMessage(now, from, m)
	if st == Pending {
		vout := r.Validated(now, m.ID, v)
		out.Send = append(out.Send, vout.Send...)
		out.Deliver = append(out.Deliver, vout.Deliver...)
		out.Penalize = append(out.Penalize, vout.Penalize...)
	}
	return out, st
}

// join joins r to topic at now, failing the test on an error, and returns the Join's Output.
func join(tb testing.TB, r *Router, now time.Time, topic string) Output {
	tb.Helper()
	out, err := r.Join(now, topic)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
