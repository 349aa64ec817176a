package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
)

// The topics of a peer's RPC are checked against MaxTopicLength once the RPC is paid for, and only those the relay
// reads: until stop 59 all of them were, before any budget, ~8 µs for an RPC of 8192 messages or subscriptions
// (~20 ms a second at 2000 RPCs). An over-long topic still reaches no state.
func TestTopicsAreCheckedOnceTheRPCIsPaidFor(t *testing.T) {
	long := strings.Repeat("t", DefaultConfig().MaxTopicLength+1)
	from := nid(floodAttacker)
	subs := func(n, longAt int) []*messages.GossipSubscription {
		out := make([]*messages.GossipSubscription, n)
		for i := range out {
			out[i] = &messages.GossipSubscription{Topic: fmt.Sprint("other-", i), Subscribe: true}
		}
		out[longAt].Topic = long
		return out
	}
	for _, c := range []struct {
		name           string
		noMessages     bool // the peer's message rate spent
		noControl      bool // the peer's control budget spent
		rpc            *messages.GossipRPC
		malformed      bool
		rateLimited    uint64
		deferred, paid bool
	}{
		// Past its message rate, a peer's messages are refused unread, the one naming a long topic last among 8192.
		{name: "messages past the rate", noMessages: true, rpc: &messages.GossipRPC{Messages: func() []*messages.GossipMessage {
			m := make([]*messages.GossipMessage, 8192)
			for i := range m {
				m[i] = &messages.GossipMessage{}
			}
			m[len(m)-1].Topic = long
			return m
		}()}, rateLimited: 8192},
		// Past its control budget, its subscriptions are deferred as far as deferSubscriptions keeps them: the long
		// topic past them is not read; one among them makes the RPC malformed, and nothing of it is deferred.
		{name: "subscriptions past the budget, the long one unread", noControl: true,
			rpc: &messages.GossipRPC{Subscriptions: subs(2*floodTopics+10, 2*floodTopics+5)}, deferred: true},
		{name: "subscriptions past the budget, the long one read", noControl: true,
			rpc: &messages.GossipRPC{Subscriptions: subs(2*floodTopics+10, 5)}, malformed: true},
		// Within the budget, the RPC is paid for, then refused whole.
		{name: "subscriptions within the budget", rpc: &messages.GossipRPC{Subscriptions: subs(3*floodTopics, 3*floodTopics-1)},
			malformed: true, paid: true},
		{name: "a graft within the budget", rpc: &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{floodTopic(0), long}}},
			malformed: true, paid: true},
		// The entries of a control kind past MaxPeerTopics are not read (controlFromWire).
		{name: "a graft past those read", rpc: &messages.GossipRPC{Control: &messages.GossipControl{Graft: func() []string {
			g := make([]string, floodTopics+1)
			for i := range g {
				g[i] = floodTopic(i % floodTopics)
			}
			g[floodTopics] = long
			return g
		}()}}, paid: true},
	} {
		now := time.Now()
		a := floodShell(t, now)
		a.clock = func() time.Time { return now }
		for c.noMessages && a.limiter.Allow(from, now) {
		}
		if c.noControl && !a.control.AllowN(from, float64(a.cfg.PeerControlBurst), now) {
			t.Fatal("the control budget's burst not taken")
		}
		before, tokens := a.stats, a.control.Tokens(from, now)
		a.handleRPC(from, c.rpc)
		st := a.stats
		if malformed := st.Malformed != before.Malformed; malformed != c.malformed || st.RateLimited-before.RateLimited != c.rateLimited {
			t.Errorf("%s: malformed %v, %d messages refused for the rate; want %v and %d", c.name, malformed,
				st.RateLimited-before.RateLimited, c.malformed, c.rateLimited)
		}
		if paid := a.control.Tokens(from, now) < tokens; paid != c.paid {
			t.Errorf("%s: paid from the control budget %v, want %v", c.name, paid, c.paid)
		}
		d := a.deferred[from]
		if (d != nil) != c.deferred {
			t.Errorf("%s: subscriptions deferred %v, want %v", c.name, d != nil, c.deferred)
		}
		if d != nil {
			for topic := range d.topics {
				if len(topic) > a.cfg.Router.MaxTopicLength {
					t.Errorf("%s: a long topic deferred", c.name)
				}
			}
		}
		for _, topic := range a.router.PeerTopics(from) {
			if len(topic) > a.cfg.Router.MaxTopicLength {
				t.Errorf("%s: a long topic taken as the peer's", c.name)
			}
		}
	}
}
