package gossip

import (
	"context"
	"fmt"
	"slices"
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
// most, however many hellos it sends; a lone hello is answered once, not again at the heartbeat.
func TestARepeatedHelloIsAnsweredOnceAHeartbeatAndNotDropped(t *testing.T) {
	cfg := DefaultRelayConfig()
	net := &marshalNetwork{flakyNetwork: flakyNetwork{self: nid(1000), peer: nid(2)}}
	a, _ := shellWithPeer(t, cfg, net, 100, 100)
	a.subs["x"] = []*Subscription{{}}
	hello := &messages.GossipRPC{Hello: true}
	for i, step := range []struct {
		hellos, beats, want int
	}{{1, 0, 1}, {0, 1, 1}, {1, 0, 2}, {3, 0, 2}, {0, 1, 3}, {2, 0, 3}, {0, 1, 4}, {0, 2, 4}, {1, 0, 5}} {
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
	// A node in no topic has nothing to answer a repeated hello with.
	delete(a.subs, "x")
	a.echoAgain()
	a.handleSubscriptions(t0, nid(2), hello, true)
	if net.sent != 5 {
		t.Fatalf("a node in no topic answered a repeated hello: %d answers in all, want still 5", net.sent)
	}
}

// A peer pairing an RPC of more subscriptions than the relay keeps deferred (twice MaxPeerTopics), refused by its
// control budget and so charged nothing, with a cheap RPC its budget lets through gets our hello again at the next
// heartbeat, once: the cheap RPC applies what was deferred, and used to send our whole topic list at once, for
// every pair (1000 a heartbeat here; an audit's finding).
func TestACutDeferredListAsksForTheHelloOnceAHeartbeat(t *testing.T) {
	cfg := DefaultRelayConfig()
	net := &flakyNetwork{self: nid(1000), peer: nid(2)}
	a, r := shellWithPeer(t, cfg, net, cfg.PeerMessageRate, cfg.PeerMessageBurst)
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
	hellos := func() int { return hellosSent(net) }
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

// shellWithPeer returns a relay shell of cfg (its Router's Self nid(1000)) over net, with the peer nid(2) added to
// its Router and a message rate and burst of rate and burst.
func shellWithPeer(t *testing.T, cfg RelayConfig, net Network, rate float64, burst int) (*relayActor, *Router) {
	t.Helper()
	cfg.Router.Self = nid(1000)
	r := newTestRouter(t, cfg.Router)
	if err := r.AddPeer(nid(2)); err != nil {
		t.Fatal(err)
	}
	return testShell(cfg, r, net, rate, burst), r
}

// subsRPC returns an RPC of n subscriptions (subscribe) to topics prefix0, prefix1...
func subsRPC(prefix string, n int, subscribe bool) *messages.GossipRPC {
	rpc := &messages.GossipRPC{}
	for i := range n {
		rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: fmt.Sprint(prefix, i), Subscribe: subscribe})
	}
	return rpc
}

// hellosSent counts the hellos among what net sent.
func hellosSent(net *flakyNetwork) (n int) {
	net.mu.Lock()
	defer net.mu.Unlock()
	for _, rpc := range net.sent {
		if rpc.Hello {
			n++
		}
	}
	return n
}

// A deferred list of twice MaxPeerTopics subscriptions is kept whole and asks no hello again; one more cuts it, and
// the heartbeat after asks for the peer's hello, once, not at the heartbeats after, and not of a peer gone by then.
// A deferred hello voids what was deferred before it, a cut list's request for the hello again included: its list
// is whole.
func TestACutDeferredListAndNothingElseAsksForTheHello(t *testing.T) {
	cfg := DefaultRelayConfig()
	net := &flakyNetwork{self: nid(1000), peer: nid(2)}
	a, r := shellWithPeer(t, cfg, net, 1000, 1000)
	limit := 2 * cfg.Router.MaxPeerTopics
	heartbeat := func() {
		a.applyDeferred(t0)
		a.flushHellos()
	}
	a.deferSubscriptions(nid(2), subsRPC("o", limit, true))
	heartbeat()
	if n := hellosSent(net); n != 0 {
		t.Fatalf("%d hellos after a deferred list of %d, want none: it was kept whole", n, limit)
	}
	a.deferSubscriptions(nid(2), subsRPC("p", limit+1, true))
	heartbeat()
	heartbeat()
	if n := hellosSent(net); n != 1 {
		t.Fatalf("%d hellos after a cut deferred list and two heartbeats, want 1", n)
	}

	// A hello after a cut list: the topics before it are not taken, and the hello is not asked again.
	a.deferSubscriptions(nid(2), subsRPC("q", limit+1, true))
	a.deferSubscriptions(nid(2), &messages.GossipRPC{Hello: true, Subscriptions: []*messages.GossipSubscription{{Topic: "d", Subscribe: true}}})
	heartbeat()
	if topics := r.PeerTopics(nid(2)); len(topics) != 1 || topics[0] != "d" {
		t.Fatalf("the peer's topics after a deferred hello listing d alone: %q", topics)
	}
	if n := hellosSent(net); n != 1 {
		t.Fatalf("%d hellos in all after a deferred hello voided a cut list, want still 1", n)
	}

	// A peer gone before the heartbeat is not asked, nor taken for a peer again.
	a.deferSubscriptions(nid(2), subsRPC("r", limit+1, true))
	a.applyDeferred(t0)
	a.removePeer(nid(2))
	a.flushHellos()
	if n := hellosSent(net); n != 1 || a.known(nid(2)) {
		t.Fatalf("%d hellos in all, the peer known %v, after it left with a hello due; want 1 and not known", n, a.known(nid(2)))
	}
}

// A subscription refused because the peer's deferred topics are full counts as missed: the node asks the peer
// again once it joins a topic (Output.Hello); it was dropped unnoticed.
func TestASubscriptionPastTheDeferredTopicsIsAskedAgainAtAJoin(t *testing.T) {
	cfg := DefaultRelayConfig()
	a, r := shellWithPeer(t, cfg, &flakyNetwork{self: nid(1000), peer: nid(2)}, 1000, 1000)
	a.deferSubscriptions(nid(2), subsRPC("left", 2*cfg.Router.MaxPeerTopics, false)) // full, none cut
	a.deferSubscriptions(nid(2), &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "x", Subscribe: true}}})
	a.applyDeferred(t0)
	if out := r.Heartbeat(t0); len(out.Hello) != 0 {
		t.Fatalf("hello again to %v with no topic joined", out.Hello)
	}
	join(t, r, t0, "x")
	if out := r.Heartbeat(t0); len(out.Hello) != 1 || out.Hello[0] != nid(2) {
		t.Fatalf("hello again to %v after the join of x, want the peer whose subscription to x went unkept", out.Hello)
	}
}

// Of an RPC's subscriptions, the relay reads the first twice MaxPeerTopics, then up to MaxPeerTopics more of the
// node's topics, however often they are listed; unread counts the subscriptions left out, those to another topic
// and to the node's past the bound, not the unsubscriptions. The RPC is left as it came.
func TestReadSubscriptionsReadsTheNodesTopicsPastTheFirstOnesUpToABound(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1000)
	a := testShell(cfg, newTestRouter(t, cfg.Router), nil, 1, 1)
	a.subs["j"] = []*Subscription{{}}
	limit, max := 2*cfg.Router.MaxPeerTopics, cfg.Router.MaxPeerTopics
	rpc := subsRPC("o", limit, true)
	rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: "other", Subscribe: true})
	for range max + 5 {
		rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: "j", Subscribe: true})
	}
	before := fmt.Sprint(rpc.Subscriptions)
	read, unread := a.readSubscriptions(rpc.Subscriptions)
	if len(read) != limit+max || read[limit].Topic != "j" || read[len(read)-1].Topic != "j" || unread != 6 {
		t.Fatalf("read %d entries (the %dth of %q), %d unread; want %d, the node's topic, 6 unread", len(read), limit+1, read[limit].Topic, unread, limit+max)
	}
	if fmt.Sprint(rpc.Subscriptions) != before {
		t.Fatal("readSubscriptions changed the RPC's subscriptions")
	}
	rpc = subsRPC("o", limit, true)
	rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: "left", Subscribe: false})
	if read, unread := a.readSubscriptions(rpc.Subscriptions); len(read) != limit || unread != 0 {
		t.Fatalf("read %d entries, %d unread, of %d and an unsubscription; want %d and none unread", len(read), unread, limit, limit)
	}
}

// At the heartbeat, with no RPC of the peer's since, the relay applies the subscriptions the peer's control budget
// deferred, and asks for the hello of a cut list, once (the other tests call these steps themselves).
func TestTheHeartbeatAppliesDeferredSubscriptionsAndAsksForACutListOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := DefaultRelayConfig()
	// The peer's hello, then nothing: the long list costs more than the burst, which takes the whole burst, and
	// the hello took a unit of it.
	cfg.PeerControlRate, cfg.PeerControlBurst = 0.001, 64
	net := &flakyNetwork{self: nid(1), peer: nid(2)}
	relay := spawnRelay(t, cfg, net)
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}); err != nil {
		t.Fatal(err)
	}
	heartbeats := func() uint64 {
		st, err := relay.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Router.Heartbeats
	}
	joinedAt := heartbeats()
	pollUntil(t, ctx, func() bool { return heartbeats() > joinedAt }, "no heartbeat after the join")
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true}})
	long := subsRPC("a", 2*cfg.Router.MaxPeerTopics, true)
	long.Subscriptions = append([]*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}, long.Subscriptions...)
	relay.send(peerRPC{from: nid(2), rpc: long}) // over the budget: deferred, and cut
	peerIn := func() bool {
		info, err := relay.Topic(ctx, "blocks")
		return err == nil && slices.Contains(info.Peers, nid(2))
	}
	hellos := hellosSent(net) // ours, as the relay greeted the peer
	pollUntil(t, ctx, peerIn, "the peer's deferred subscription to blocks was never applied")
	pollUntil(t, ctx, func() bool { return hellosSent(net) == hellos+1 }, "no hello asked for the peer's cut list")
	applied := heartbeats()
	pollUntil(t, ctx, func() bool { return heartbeats() >= applied+2 }, "no heartbeats after")
	if n := hellosSent(net) - hellos; n != 1 {
		t.Fatalf("%d hellos for one cut list, want 1", n)
	}
}

// A peer's hello listing no topic is heard: sharing no topic with the node, the peer is released at the next
// heartbeat, not only after silentReleaseBeats heartbeats of silence.
func TestAnEmptyHelloReleasesThePeerAtTheNextHeartbeat(t *testing.T) {
	cfg := DefaultRelayConfig()
	a, r := shellWithPeer(t, cfg, &flakyNetwork{self: nid(1000), peer: nid(2)}, 1000, 1000)
	a.handleRPC(nid(2), &messages.GossipRPC{Hello: true})
	if out := r.Heartbeat(t0); len(out.Release) != 1 || out.Release[0] != nid(2) {
		t.Fatalf("released %v at the heartbeat after the peer's empty hello, want the peer", out.Release)
	}
}

// A peer some of whose subscriptions went untracked is asked for them again after the node's next join, and once
// its answer, its whole list, is tracked in full, not at the joins after; a subscription of its refused again has it
// asked again. Until stop 60 a peer once past MaxPeerTopics topics got our hello after every join, for good.
func TestAPeerWhoseAnswerFitsIsNotAskedAgainAtTheNextJoin(t *testing.T) {
	cfg := DefaultRelayConfig()
	net := &flakyNetwork{self: nid(1000), peer: nid(2)}
	a, r := shellWithPeer(t, cfg, net, 1000, 1000)
	max := cfg.Router.MaxPeerTopics
	now := t0
	a.clock = func() time.Time { return now }
	joinAndBeat := func(topic string) (hellos int) { // the hellos the heartbeat after the join sent the peer
		t.Helper()
		a.subs[topic] = []*Subscription{{}}
		join(t, r, now, topic)
		now = now.Add(cfg.Router.HeartbeatInterval)
		before := hellosSent(net)
		a.applyDeferred(now)
		a.apply(r.Heartbeat(now))
		a.flushHellos()
		return hellosSent(net) - before
	}
	hello := subsRPC("o", max+1, true) // the last refused
	hello.Hello = true
	a.handleRPC(nid(2), hello)
	if n := r.Stats().SubscriptionsUntracked; n != 1 {
		t.Fatalf("%d subscriptions untracked of a hello of %d topics, want 1", n, max+1)
	}
	if n := joinAndBeat("j1"); n != 1 {
		t.Fatalf("%d hellos after a join, want 1: one of the peer's subscriptions went untracked", n)
	}
	// The peer left its first topic, and answers with the others, which fit.
	a.handleRPC(nid(2), &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "o0"}}})
	answer := subsRPC("o", max+1, true)
	answer.Subscriptions = answer.Subscriptions[1:]
	a.handleRPC(nid(2), answer)
	if topics := r.PeerTopics(nid(2)); len(topics) != max || !slices.Contains(topics, fmt.Sprint("o", max)) {
		t.Fatalf("the peer tracked in %d topics after its answer, want %d, o%d among them", len(topics), max, max)
	}
	if n := joinAndBeat("j2"); n != 0 {
		t.Fatalf("%d hellos after a join, want none: the peer's whole list is tracked", n)
	}
	a.handleRPC(nid(2), subsRPC("p", 1, true)) // refused
	if n := joinAndBeat("j3"); n != 1 {
		t.Fatalf("%d hellos after a join, want 1: a subscription of the peer's was refused", n)
	}
}

// The relay counts the subscriptions it leaves untracked (Stats.SubscriptionsUntracked): of an RPC it reads, those
// the Router refused and those left unread; of one its control budget deferred, every entry cut and the
// subscriptions past the topics it keeps.
func TestTheRelayCountsTheSubscriptionsItLeavesUntracked(t *testing.T) {
	cfg := DefaultRelayConfig()
	a, r := shellWithPeer(t, cfg, &flakyNetwork{self: nid(1000), peer: nid(2)}, 1000, 1000)
	max, limit := cfg.Router.MaxPeerTopics, 2*cfg.Router.MaxPeerTopics
	untracked := func() uint64 { return r.Stats().SubscriptionsUntracked }
	a.handleRPC(nid(2), subsRPC("o", limit+3, true)) // max tracked, max refused, 3 unread
	if n := untracked(); n != uint64(max+3) {
		t.Fatalf("%d untracked of an RPC of %d subscriptions, want %d", n, limit+3, max+3)
	}
	a.deferSubscriptions(nid(2), subsRPC("p", limit+2, false)) // 2 cut
	a.deferSubscriptions(nid(2), subsRPC("q", 1, true))        // past the topics kept
	a.deferSubscriptions(nid(2), subsRPC("r", 1, false))       // past them too, an unsubscription
	if n := untracked(); n != uint64(max+6) {
		t.Fatalf("%d untracked after deferred RPCs, want %d", n, max+6)
	}
}
