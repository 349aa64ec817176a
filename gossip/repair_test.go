package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// routerPair wires routers by id: Send outputs are handed to the addressed router (control, then messages
// accepted at once). Outputs to ids without a router are dropped.
type routerPair struct {
	t       *testing.T
	routers map[session.NodeID]*Router
	now     time.Time
	queue   []pairSend
}

type pairSend struct {
	from session.NodeID
	s    Send
}

func (p *routerPair) push(from session.NodeID, out Output) {
	for _, s := range out.Send {
		p.queue = append(p.queue, pairSend{from, s})
	}
}

func (p *routerPair) drain() {
	for len(p.queue) > 0 {
		q := p.queue[0]
		p.queue = p.queue[1:]
		r := p.routers[q.s.To]
		if r == nil {
			continue
		}
		if q.s.Control != nil {
			p.push(q.s.To, r.HandleControl(p.now, q.from, q.s.Control))
		}
		if q.s.Msg != nil {
			m := *q.s.Msg
			m.idSet = false
			out, st := r.HandleMessage(p.now, q.from, &m)
			p.push(q.s.To, out)
			if st == Pending {
				p.push(q.s.To, r.Validated(p.now, m.ID, Accept))
			}
		}
	}
}

// A node R that missed, on 20 topics, 20 messages each while cut off from S, rejoins S, their only common peer:
// S's heartbeat announces the 400 ids and R asks for them askLimit a heartbeat, within what S serves one peer
// (MaxIWantReplies). Until stop 58 R asked for all of them at once, S served 256 and refused the rest, and R,
// having no other announcer, gave 144 up: never repaired.
func TestRepairOfManyTopicsStaysWithinWhatThePeerServes(t *testing.T) {
	const nTopics, perTopic = 20, 20
	cfg := DefaultConfig()
	s, r := nid(1), nid(2)
	rs, rr := newTestRouter(t, cfg), newTestRouter(t, cfg)
	p := &routerPair{t: t, routers: map[session.NodeID]*Router{s: rs, r: rr}, now: t0}
	topics := make([]string, nTopics)
	for k := range topics {
		topics[k] = fmt.Sprintf("subnet-%02d", k)
	}
	// S has another peer (3, not wired) while R is away, and publishes.
	if err := rs.AddPeer(nid(3)); err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		if err := rs.PeerSubscribed(nid(3), tp); err != nil {
			t.Fatal(err)
		}
		rs.Join(p.now, tp)
		rr.Join(p.now, tp)
	}
	var ids []MsgID
	for _, tp := range topics {
		for j := range perTopic {
			m := &Message{Topic: tp, Data: fmt.Appendf(nil, "%s %d", tp, j), Origin: nid(3), OriginTime: p.now.UnixNano()}
			if _, err := rs.Publish(p.now, m); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
	}
	// R comes back: S and R learn of each other's subscriptions.
	for _, pair := range [][2]*Router{{rs, rr}, {rr, rs}} {
		other := r
		if pair[0] == rr {
			other = s
		}
		if err := pair[0].AddPeer(other); err != nil {
			t.Fatal(err)
		}
		for _, tp := range topics {
			if err := pair[0].PeerSubscribed(other, tp); err != nil {
				t.Fatal(err)
			}
		}
	}
	for beat := 1; beat <= 10; beat++ {
		p.now = p.now.Add(cfg.HeartbeatInterval)
		p.push(s, rs.Heartbeat(p.now))
		p.push(r, rr.Heartbeat(p.now))
		p.drain()
	}
	missing := 0
	for _, id := range ids {
		if !rr.Seen(id) {
			missing++
		}
	}
	st, ss := rr.Stats(), rs.Stats()
	if missing > 0 || ss.IWantLimited != 0 || st.IWantExpired != 0 {
		t.Fatalf("R never got %d of the %d messages S announced to it (S refused %d asked, R gave %d up)", missing,
			len(ids), ss.IWantLimited, st.IWantExpired)
	}
}
