package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
)

// The subscriptions kept for a rate-limited peer are at most twice MaxPeerTopics topics in all, however many RPCs
// they come in, and the node's joined topics besides; a topic kept already takes the peer's latest word.
func TestDeferredSubscriptionsAreBoundedAcrossRPCs(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1000)
	r := newTestRouter(t, cfg.Router)
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	a := testShell(cfg, r, nil, 1, 1)
	a.subs["joined"] = []*Subscription{{}}
	limit := 2 * a.cfg.Router.MaxPeerTopics
	rpc := func(from, n int, subscribe bool) *messages.GossipRPC {
		r := &messages.GossipRPC{}
		for i := from; i < from+n; i++ {
			r.Subscriptions = append(r.Subscriptions, &messages.GossipSubscription{Topic: fmt.Sprintf("t%d", i), Subscribe: subscribe})
		}
		return r
	}
	a.deferSubscriptions(nid(1), rpc(0, limit-1, true))
	a.deferSubscriptions(nid(1), rpc(limit-1, 3, true)) // one more fits, two do not
	a.deferSubscriptions(nid(1), rpc(0, 1, false))      // kept already: its latest word
	d := a.deferred[nid(1)]
	if len(d.topics) != limit || d.topics["t0"] || !d.topics[fmt.Sprintf("t%d", limit-1)] {
		t.Fatalf("%d topics kept (t0 subscribed %v), want %d with t0 left", len(d.topics), d.topics["t0"], limit)
	}
	a.deferSubscriptions(nid(1), &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "joined", Subscribe: true}}})
	if len(d.topics) != limit+1 || !d.topics["joined"] {
		t.Fatalf("%d topics kept (joined: %v), want the node's topic kept past the %d", len(d.topics), d.topics["joined"], limit)
	}
}

// A repeated hello that comes after the heartbeat's answer to the peer is answered at the next heartbeat, not
// dropped (it may ask for a topic the peer joined since: Output.Hello), and the peer gets one answer a heartbeat at
// most, however many hellos it sends.
func TestARepeatedHelloIsAnsweredOnceAHeartbeatAndNotDropped(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1000)
	r := newTestRouter(t, cfg.Router)
	if err := r.AddPeer(nid(2)); err != nil {
		t.Fatal(err)
	}
	net := &marshalNetwork{flakyNetwork: flakyNetwork{self: nid(1000), peer: nid(2)}}
	a := testShell(cfg, r, net, 100, 100)
	a.subs["x"] = []*Subscription{{}}
	hello := &messages.GossipRPC{Hello: true}
	for i, step := range []struct {
		hellos, beats, want int
	}{{1, 0, 1}, {3, 0, 1}, {0, 1, 2}, {2, 0, 2}, {0, 1, 3}, {0, 2, 3}, {1, 0, 4}} {
		for range step.hellos {
			a.handleSubscriptions(t0, nid(2), hello, true)
		}
		for range step.beats {
			a.echoAgain()
		}
		if net.sent != step.want {
			t.Fatalf("step %d (%d hellos, %d heartbeats): %d answers in all, want %d", i, step.hellos, step.beats, net.sent, step.want)
		}
	}
}

// A peer pairing an RPC of more subscriptions than the relay keeps deferred (twice MaxPeerTopics), refused by its
// control budget and so charged nothing, with a cheap RPC its budget lets through gets our hello again at the next
// heartbeat, once: the cheap RPC applies what was deferred, and used to send our whole topic list at once, for
// every pair (1000 a heartbeat here; an audit's finding).
func TestACutDeferredListAsksForTheHelloOnceAHeartbeat(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1000)
	r := newTestRouter(t, cfg.Router)
	if err := r.AddPeer(nid(2)); err != nil {
		t.Fatal(err)
	}
	net := &flakyNetwork{self: nid(1000), peer: nid(2)}
	a := testShell(cfg, r, net, cfg.PeerMessageRate, cfg.PeerMessageBurst)
	now := t0
	a.clock = func() time.Time { return now }
	for i := range cfg.Router.MaxPeerTopics {
		topic := fmt.Sprintf("topic-%03d", i)
		a.subs[topic] = []*Subscription{{}}
		join(t, r, now, topic)
	}
	long := &messages.GossipRPC{}
	for i := range 2*cfg.Router.MaxPeerTopics + 1 {
		long.Subscriptions = append(long.Subscriptions, &messages.GossipSubscription{Topic: fmt.Sprint("o", i), Subscribe: true})
	}
	cheap := &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "c", Subscribe: true}}}
	for a.stats.RateLimitedControl == 0 { // the peer's budget, spent
		a.handleRPC(nid(2), long)
	}
	hellos := func() (n int) {
		net.mu.Lock()
		defer net.mu.Unlock()
		for _, rpc := range net.sent {
			if rpc.Hello {
				n++
			}
		}
		return n
	}
	before := hellos()
	for range 1000 { // one heartbeat interval, 1000 pairs
		now = now.Add(time.Millisecond)
		a.handleRPC(nid(2), long)
		a.handleRPC(nid(2), cheap)
	}
	if n := hellos() - before; n != 0 {
		t.Fatalf("%d hellos sent to the peer between two heartbeats, want none before the heartbeat", n)
	}
	a.applyDeferred(now)
	a.apply(a.router.Heartbeat(now))
	a.flushHellos()
	if n := hellos() - before; n != 1 {
		t.Fatalf("%d hellos sent to the peer at the heartbeat, want one", n)
	}
}
