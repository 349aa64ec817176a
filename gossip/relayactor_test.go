package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// flakyNetwork is a Network with one gossip peer whose first sends fail, as when a connection is not registered
// yet or is being replaced; it records what went out.
type flakyNetwork struct {
	self, peer session.NodeID
	mu         sync.Mutex
	failures   int // sends left to fail
	sent       []*messages.GossipRPC
}

func (f *flakyNetwork) ID() session.NodeID     { return f.self }
func (f *flakyNetwork) Sign(msg []byte) []byte { return make([]byte, 64) }
func (f *flakyNetwork) GossipPeers() []session.NodeID {
	return []session.NodeID{f.peer}
}
func (f *flakyNetwork) IsGossipPeer(id session.NodeID) bool                 { return id == f.peer }
func (f *flakyNetwork) SubscribeEvents(func(proto.Message)) (func(), error) { return func() {}, nil }
func (f *flakyNetwork) Retain(session.NodeID)                               {}
func (f *flakyNetwork) Relayed(session.NodeID)                              {}
func (f *flakyNetwork) DiscoverTopic(string, bool, int)                     {}
func (f *flakyNetwork) Release(session.NodeID)                              {}
func (f *flakyNetwork) Keep(session.NodeID)                                 {}
func (f *flakyNetwork) Joining() bool                                       { return false }
func (f *flakyNetwork) Connect(session.NodeID)                              {}
func (f *flakyNetwork) Ban(session.NodeID, time.Duration, string) error     { return nil }

func (f *flakyNetwork) SendNow(_ session.NodeID, _ string, msg proto.Message, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return errors.New("not connected")
	}
	f.sent = append(f.sent, proto.Clone(msg).(*messages.GossipRPC))
	return nil
}

// subscribed tells whether some RPC that went out told the peer the node subscribes to topic.
func (f *flakyNetwork) subscribed(topic string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.sent, func(rpc *messages.GossipRPC) bool {
		return slices.ContainsFunc(rpc.Subscriptions, func(s *messages.GossipSubscription) bool {
			return s.Topic == topic && s.Subscribe
		})
	})
}

// TestRelayResendsSubscriptionsThatCouldNotBeSent checks that a subscription whose RPC could not be queued is
// not lost: the hello, with the subscriptions, goes again on a later heartbeat.
func TestRelayResendsSubscriptionsThatCouldNotBeSent(t *testing.T) {
	net := &flakyNetwork{self: nid(1), peer: nid(2), failures: 2} // the first hello and the subscription
	cfg := DefaultRelayConfig()
	cfg.Router.HeartbeatInterval, cfg.Router.GossipDelay = 20*time.Millisecond, 10*time.Millisecond
	relay := spawnRelay(t, cfg, net)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	for !net.subscribed("blocks") {
		select {
		case <-ctx.Done():
			t.Fatal("the subscription never reached the peer after its RPC failed")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// orderNetwork records the peer and a copy of each RPC sent.
type orderNetwork struct {
	flakyNetwork
	to []session.NodeID
}

func (o *orderNetwork) SendNow(peer session.NodeID, protocol string, msg proto.Message, priority bool) error {
	o.to = append(o.to, peer)
	return o.flakyNetwork.SendNow(peer, protocol, msg, priority)
}

// TestSendAllKeepsThePeersInTheOrderOfTheSends checks that each peer gets one RPC with all that is for it, peers
// in the order the sends first name them: the router lists tree links first, so they get their copies queued
// first.
func TestSendAllKeepsThePeersInTheOrderOfTheSends(t *testing.T) {
	net := &orderNetwork{}
	a := &relayActor{relayState: &relayState{}, cfg: DefaultRelayConfig(), net: net, log: zerolog.Nop()}
	m := &Message{Topic: "t", Data: []byte("d"), Origin: nid(9)}
	a.sendAll([]Send{
		{To: nid(3), Msg: m}, {To: nid(1), Msg: m}, {To: nid(3), Control: &Control{Graft: []string{"t"}}},
		{To: nid(2), Control: &Control{Prune: []Prune{{Topic: "t"}}}},
	})
	if !slices.Equal(net.to, []session.NodeID{nid(3), nid(1), nid(2)}) {
		t.Fatalf("RPCs went to %v, want peers 3, 1, 2", net.to)
	}
	first := net.sent[0]
	if len(first.Messages) != 1 || first.Control == nil || !slices.Equal(first.Control.Graft, []string{"t"}) {
		t.Fatalf("peer 3's RPC: %v, want the message and the graft", first)
	}
	if len(net.sent[1].Messages) != 1 || net.sent[2].Control == nil || len(net.sent[2].Messages) != 0 {
		t.Fatalf("RPCs of peers 1 and 2: %v, %v", net.sent[1], net.sent[2])
	}
}

// TestRelayCountsTheRPCsItQueues checks RelayStats.RPCsSent and ControlRPCsSent: one per RPC queued, those without
// a message apart, and none for an RPC that could not be queued (a send failure).
func TestRelayCountsTheRPCsItQueues(t *testing.T) {
	net := &orderNetwork{flakyNetwork: flakyNetwork{failures: 1}}
	a := &relayActor{relayState: &relayState{}, cfg: DefaultRelayConfig(), net: net, log: zerolog.Nop()}
	m := &Message{Topic: "t", Data: []byte("d"), Origin: nid(9)}
	a.sendAll([]Send{
		{To: nid(1), Msg: m}, // fails
		{To: nid(2), Msg: m}, {To: nid(2), Control: &Control{Graft: []string{"t"}}},
		{To: nid(3), Control: &Control{Prune: []Prune{{Topic: "t"}}}},
		{To: nid(4), Msg: m},
	})
	if len(net.to) != 4 || len(net.sent) != 3 {
		t.Fatalf("%d RPCs tried, %d queued: want 4 and 3", len(net.to), len(net.sent))
	}
	if s := a.stats; s.RPCsSent != 3 || s.ControlRPCsSent != 1 || s.SendFailures != 1 {
		t.Fatalf("RPCs sent %d, control only %d, failures %d: want 3, 1, 1", s.RPCsSent, s.ControlRPCsSent, s.SendFailures)
	}
}

// sizeNetwork is a Network that refuses, as the node's SendNow does, an RPC whose encoding is over max bytes
// (the node's MaxMessageSize, 1 MiB by default), and records what it queued per peer.
type sizeNetwork struct {
	flakyNetwork
	max    int
	mu2    sync.Mutex
	queued map[session.NodeID][]*messages.GossipRPC
	failed int
}

func (s *sizeNetwork) SendNow(peer session.NodeID, _ string, msg proto.Message, _ bool) error {
	s.mu2.Lock()
	defer s.mu2.Unlock()
	if n := proto.Size(msg); n > s.max {
		s.failed++
		return fmt.Errorf("message too large: %d bytes, limit %d", n, s.max)
	}
	if s.queued == nil {
		s.queued = make(map[session.NodeID][]*messages.GossipRPC)
	}
	s.queued[peer] = append(s.queued[peer], proto.Clone(msg).(*messages.GossipRPC))
	return nil
}

// TestRelaySplitsIWantRepliesUnderTheRPCLimit: a peer asks (IWANT) for three cached messages of 400 KiB, each
// within MaxMessageSize (512 KiB), along with control for it. All three together are over the connection's 1 MiB
// limit: the relay sends them in several RPCs, each under MaxRPCSize, the control in the first.
func TestRelaySplitsIWantRepliesUnderTheRPCLimit(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(100)
	r := joined(t, cfg.Router, 2)
	var ids [][]byte
	for i := range 3 {
		m := &Message{Topic: topicA, Data: bytes.Repeat([]byte{byte(i)}, 400<<10), Origin: nid(9), OriginTime: time.Now().UnixNano()}
		if _, st := receive(t, r, time.Now(), nid(1), m, Accept); st != Pending {
			t.Fatalf("message %d: %v", i, st)
		}
		ids = append(ids, m.ID[:])
	}
	net := &sizeNetwork{max: cfg.MaxRPCSize}
	a := testShell(cfg, r, net, 1000, 1000)
	a.peers[nid(1)] = true
	// An announcement of a message the node misses: the node's IWANT for it goes back with the replies.
	ihave := &messages.GossipIHave{Topic: topicA, Ids: [][]byte{bytes.Repeat([]byte{0xee}, MsgIDSize)}}
	a.handleRPC(nid(2), &messages.GossipRPC{Control: &messages.GossipControl{Iwant: ids, Ihave: []*messages.GossipIHave{ihave}}})
	got := 0
	if len(net.queued[nid(2)]) == 0 || net.queued[nid(2)][0].Control == nil {
		t.Fatal("no RPC with control went to peer 2")
	}
	for i, rpc := range net.queued[nid(2)] {
		got += len(rpc.Messages)
		if (rpc.Control != nil) != (i == 0) {
			t.Errorf("RPC %d of %d carries control: %v, want control in the first only", i, len(net.queued[nid(2)]), rpc.Control != nil)
		}
	}
	if got != 3 || net.failed != 0 {
		t.Fatalf("peer 2 asked for 3 messages of 400 KiB and was sent %d (%d RPCs refused as too large)", got, net.failed)
	}
}

// TestRelayConfigNeedsRoomForAMessage checks that MaxRPCSize must hold a message of MaxMessageSize and that
// FitRPCSize lowers both to a network's limit.
func TestRelayConfigNeedsRoomForAMessage(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.MaxRPCSize = cfg.MaxMessageSize
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("MaxRPCSize = MaxMessageSize: Validate = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultRelayConfig()
	cfg.Router.MaxIWantReplyBytes = cfg.MaxMessageSize
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("MaxIWantReplyBytes = MaxMessageSize: Validate = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultRelayConfig()
	cfg.Router.CacheMaxBytes = cfg.MaxMessageSize // a message of that size was never cached, announced nor served
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("CacheMaxBytes = MaxMessageSize: Validate = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultRelayConfig()
	cfg.MaxMessageSize = math.MaxInt // MaxMessageSize + the overhead overflowed, and passed
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("MaxMessageSize = MaxInt: Validate = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultRelayConfig()
	cfg.DeliveryBufferBytes = 0
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("DeliveryBufferBytes 0: Validate = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultRelayConfig()
	cfg.PeerControlBurst = minPeerControlBurst - 1 // no beacon check could be paid
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("PeerControlBurst %d: Validate = %v, want ErrInvalidConfig", cfg.PeerControlBurst, err)
	}
	cfg = DefaultRelayConfig()
	cfg.Router.MaxTopicLength = maxRelayTopicLength + 1
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("MaxTopicLength beyond RPCMessageOverhead: Validate = %v, want ErrInvalidConfig", err)
	}
	for _, limit := range []int{64 << 10, 100, 1 << 30} {
		fit := DefaultRelayConfig().FitRPCSize(limit)
		if err := fit.Validate(); err != nil {
			t.Errorf("FitRPCSize(%d): %v", limit, err)
		}
		if limit > RPCMessageOverhead && (fit.MaxRPCSize > limit || fit.MaxMessageSize+RPCMessageOverhead > fit.MaxRPCSize) {
			t.Errorf("FitRPCSize(%d): MaxRPCSize %d, MaxMessageSize %d", limit, fit.MaxRPCSize, fit.MaxMessageSize)
		}
	}
}

// TestRelayRefusesTopicsOverMaxTopicLength: Subscribe and Publish fail with ErrTopicTooLong for a topic over
// MaxTopicLength (and ErrTopicNotUTF8 for one that is not UTF-8); an RPC naming one in what the relay reads is
// dropped and its sender penalised: whole when its subscriptions or control name it, from the message naming it on
// (its subscriptions and control taken: they are read first, and a message's topic is checked after its token).
func TestRelayRefusesTopicsOverMaxTopicLength(t *testing.T) {
	cfg := DefaultRelayConfig()
	long := strings.Repeat("t", cfg.Router.MaxTopicLength+1)
	relay := spawnRelay(t, cfg, &flakyNetwork{self: nid(1), peer: nid(2)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := relay.Subscribe(ctx, long, func(*Delivery) {}); !errors.Is(err, ErrTopicTooLong) {
		t.Errorf("Subscribe to a long topic: %v, want ErrTopicTooLong", err)
	}
	if _, err := relay.Publish(ctx, long, []byte("x")); !errors.Is(err, ErrTopicTooLong) {
		t.Errorf("Publish on a long topic: %v, want ErrTopicTooLong", err)
	}
	if _, err := relay.Subscribe(ctx, long[1:], func(*Delivery) {}); err != nil {
		t.Errorf("Subscribe to a topic of MaxTopicLength: %v", err)
	}
	// A topic that is not UTF-8 could not be put on the wire (the hello naming it would fail, and with it the
	// node's other subscriptions): refused up front.
	if _, err := relay.Subscribe(ctx, "\xff\xfe", func(*Delivery) {}); !errors.Is(err, ErrTopicNotUTF8) {
		t.Errorf("Subscribe to a topic that is not UTF-8: %v, want ErrTopicNotUTF8", err)
	}
	if _, err := relay.Publish(ctx, "\xff\xfe", []byte("x")); !errors.Is(err, ErrTopicNotUTF8) {
		t.Errorf("Publish on a topic that is not UTF-8: %v, want ErrTopicNotUTF8", err)
	}

	rcfg := cfg
	rcfg.Router.Self = nid(1)
	rpcs := map[string]*messages.GossipRPC{
		"subscription": {Subscriptions: []*messages.GossipSubscription{{Topic: long, Subscribe: true}}},
		"message":      {Messages: []*messages.GossipMessage{{Topic: long, Origin: nid(9).Bytes()}}},
		"ihave":        {Control: &messages.GossipControl{Ihave: []*messages.GossipIHave{{Topic: long}}}},
		"graft":        {Control: &messages.GossipControl{Graft: []string{long}}},
		"prune":        {Control: &messages.GossipControl{Prune: []*messages.GossipPrune{{Topic: long}}}},
		"tree":         {Control: &messages.GossipControl{Tree: []*messages.GossipTree{{Topic: long, Root: nid(3).Bytes()}}}},
	}
	for name, rpc := range rpcs {
		r := joined(t, rcfg.Router, 2)
		a := testShell(rcfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
		a.peers[nid(1)] = true
		rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: "other", Subscribe: true})
		a.handleRPC(nid(2), rpc)
		if a.stats.Malformed != 1 || r.peers[nid(2)].penalty != 1 || r.Stats().Rejected != 0 {
			t.Errorf("%s naming a long topic: %d malformed, %d penalties, %d rejected; want 1, 1 and 0 (not validation's)",
				name, a.stats.Malformed, r.peers[nid(2)].penalty, r.Stats().Rejected)
		}
		want := []string{topicA}
		if name == "message" {
			want = []string{topicA, "other"}
		}
		if topics := r.PeerTopics(nid(2)); !slices.Equal(topics, want) {
			t.Errorf("%s naming a long topic: peer topics %q, want %q", name, topics, want)
		}
	}
}

// Messages the relay refuses before validation (a bad signature, malformed, too large) penalise their sender and
// count in RelayStats.BadSignatures or Malformed, not in Stats.Rejected, which is validation's rejections: until
// stop 54 PenalizePeer counted them there too, and gossip_events_total{event="rejected"} repeated
// gossip_errors_total (an audit's finding).
func TestMessagesRefusedBeforeValidationAreNotCountedRejected(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	cfg.MaxMessageSize = 100
	r := joined(t, cfg.Router, 2)
	a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
	now := time.Now().UnixNano()
	a.handleRPC(nid(2), &messages.GossipRPC{Messages: []*messages.GossipMessage{
		{Topic: topicA, Data: []byte("forged"), Origin: nid(9).Bytes(), OriginTime: now, Signature: make([]byte, 64)},
		{Topic: topicA, Data: make([]byte, 101), Origin: nid(9).Bytes(), OriginTime: now},
		{Topic: topicA, Data: []byte("no origin"), Origin: []byte{1, 2, 3}, OriginTime: now},
	}})
	if st := r.Stats(); a.stats.BadSignatures != 1 || a.stats.Malformed != 2 || r.peers[nid(2)].penalty != 3 || st.Rejected != 0 {
		t.Errorf("%d bad signatures, %d malformed, %d penalties, %d rejected; want 1, 2, 3 and 0",
			a.stats.BadSignatures, a.stats.Malformed, r.peers[nid(2)].penalty, st.Rejected)
	}
}

// A peer's message rate limit outlives its connection: reconnecting does not refill its burst (it did, so that a
// peer reconnecting now and then sent several times PeerMessageRate, each message a signature check).
func TestRateLimitSurvivesAReconnect(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	r := joined(t, cfg.Router, 2)
	a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 0.001, 3)
	burst := func() *messages.GossipRPC {
		rpc := &messages.GossipRPC{}
		for range 3 {
			rpc.Messages = append(rpc.Messages, &messages.GossipMessage{Topic: topicA})
		}
		return rpc
	}
	a.handleRPC(nid(2), burst())
	if a.stats.RateLimited != 0 {
		t.Fatalf("the first burst: %d rate limited, want 0", a.stats.RateLimited)
	}
	a.removePeer(nid(2))
	a.handleRPC(nid(2), burst()) // back at once, on a new connection
	if a.stats.RateLimited != 3 {
		t.Fatalf("a burst after a reconnect: %d rate limited, want all 3", a.stats.RateLimited)
	}
}

// RateLimited counts the messages the per-peer rate limit dropped, as its doc says; the RPCs whose control the
// control budget refused count in RateLimitedControl. Until stop 54 both were in RateLimited, so it counted
// messages and RPCs alike.
func TestRateLimitedCountsMessagesAndControlApart(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	cfg.PeerControlRate, cfg.PeerControlBurst = 0.001, 2 // one RPC of a graft
	r := joined(t, cfg.Router, 2)
	a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 0.001, 1)
	a.handleRPC(nid(2), &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{topicA}},
		Messages: []*messages.GossipMessage{{Topic: topicA}}}) // both budgets spent
	a.handleRPC(nid(2), &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{topicA}},
		Messages: []*messages.GossipMessage{{Topic: topicA}, {Topic: topicA}}})
	if a.stats.RateLimited != 2 || a.stats.RateLimitedControl != 1 {
		t.Errorf("RateLimited %d, RateLimitedControl %d; want 2 (the messages) and 1 (the control)", a.stats.RateLimited, a.stats.RateLimitedControl)
	}
}

// testShell returns a relay actor, not spawned, around r on net, with nid(2) a greeted gossip peer, a message rate
// limit of rate and burst and cfg's control budget: for tests that call its handlers directly.
func testShell(cfg RelayConfig, r *Router, net Network, rate float64, burst int) *relayActor {
	return &relayActor{cfg: cfg, net: net, log: zerolog.Nop(), router: r, echoed: map[session.NodeID]bool{},
		peers: map[session.NodeID]bool{nid(2): true}, relayState: &relayState{subs: map[string][]*Subscription{},
			limiter: routing.NewRateLimiter[session.NodeID](rate, burst, 10),
			control: routing.NewRateLimiter[session.NodeID](cfg.PeerControlRate, cfg.PeerControlBurst, 10)}}
}

// spawnRelay starts a relay actor with cfg on net in an actor system of its own, all stopped when the test ends.
func spawnRelay(t *testing.T, cfg RelayConfig, net Network) *Relay {
	t.Helper()
	props, stopped, err := NewRelayProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	pid := system.Root.Spawn(props)
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		_ = system.Root.StopFuture(pid).Wait()
	})
	return NewRelay(system.Root, pid, stopped, done, nil)
}

// A subscription handler that panics on a delivery (a payload it did not expect, from a peer) is logged and
// counted, and the subscription goes on with the next delivery: the panic used to end the process.
func TestSubscriptionSurvivesAPanickingHandler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	relay := spawnRelay(t, DefaultRelayConfig(), &flakyNetwork{self: nid(1), peer: nid(2)})
	got := make(chan string, 4)
	sub, err := relay.Subscribe(ctx, "blocks", func(d *Delivery) {
		if string(d.Data) == "poison" {
			panic("unexpected payload")
		}
		got <- string(d.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	for _, data := range []string{"poison", "fine"} {
		if _, err := relay.Publish(ctx, "blocks", []byte(data)); err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
	}
	select {
	case d := <-got:
		if d != "fine" {
			t.Fatalf("got %q, want the delivery after the panic", d)
		}
	case <-ctx.Done():
		t.Fatal("no delivery after the handler panicked")
	}
	if sub.Panics() != 1 {
		t.Fatalf("Panics = %d, want 1", sub.Panics())
	}
}

// Publish copies its data: a caller that reuses its buffer afterwards does not change what the relay delivers (and
// serves to peers, whose signature check the changed bytes would fail).
func TestPublishCopiesItsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	relay := spawnRelay(t, DefaultRelayConfig(), &flakyNetwork{self: nid(1), peer: nid(2)})
	got := make(chan string, 1)
	if _, err := relay.Subscribe(ctx, "blocks", func(d *Delivery) { got <- string(d.Data) }); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	buf := []byte("block 1")
	if _, err := relay.Publish(ctx, "blocks", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "BLOCK 9") // the caller reuses its buffer
	select {
	case d := <-got:
		if d != "block 1" {
			t.Fatalf("delivered %q, want the bytes as published", d)
		}
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
}

// A peer that sets Hello on every RPC gets the node's subscriptions back once per heartbeat at most, not for each
// (a cheap way to make the node send its whole topic list over and over).
func TestARepeatedHelloIsAnsweredOncePerHeartbeat(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	r := joined(t, cfg.Router, 2)
	net := &flakyNetwork{self: nid(1), peer: nid(2)}
	a := testShell(cfg, r, net, 1000, 1000)
	a.subs[topicA] = []*Subscription{{topic: topicA}}
	hello := &messages.GossipRPC{Hello: true, Subscriptions: []*messages.GossipSubscription{{Topic: topicA, Subscribe: true}}}
	for range 100 {
		a.handleRPC(nid(2), hello)
	}
	if n := len(net.sent); n != 1 {
		t.Fatalf("100 hellos in a heartbeat got %d answers, want 1", n)
	}
	clear(a.echoed) // what the next heartbeat does
	a.handleRPC(nid(2), hello)
	if n := len(net.sent); n != 2 {
		t.Fatalf("a hello in the next heartbeat got %d answers in all, want 2", n)
	}
}

// Control and subscriptions draw on the peer's control budget, whatever messages ride with them: a peer cannot
// keep the relay busy with them beyond PeerControlRate. Charged only to RPCs of control alone, they were free with
// a stale message attached (40 000 processed against 4 127), and subscriptions were never charged.
func TestControlAndSubscriptionsCountAgainstTheControlBudget(t *testing.T) {
	stale := []*messages.GossipMessage{{Topic: topicA, Origin: nid(9).Bytes(), Data: []byte("x")}}
	for name, rpc := range map[string]func(i int) *messages.GossipRPC{
		"control alone": func(int) *messages.GossipRPC {
			return &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{topicA}}}
		},
		"control with a stale message": func(int) *messages.GossipRPC {
			return &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{topicA}}, Messages: stale}
		},
		"subscriptions": func(i int) *messages.GossipRPC {
			return &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: fmt.Sprint("t-", i), Subscribe: true}}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultRelayConfig()
			cfg.Router.Self = nid(1)
			cfg.PeerControlRate, cfg.PeerControlBurst = 0.001, 10 // 5 RPCs of one entry
			r := joined(t, cfg.Router, 2)
			a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
			topics := len(r.PeerTopics(nid(2)))
			for i := range 20 {
				a.handleRPC(nid(2), rpc(i))
			}
			if n := r.Stats().GraftsReceived + uint64(len(r.PeerTopics(nid(2)))-topics); n != 5 || a.stats.RateLimitedControl != 15 {
				t.Fatalf("20 RPCs of 2 units, a budget of 10: %d grafts and subscriptions taken, %d refused; want 5 and 15",
					n, a.stats.RateLimitedControl)
			}
		})
	}
}

// Control for a peer too large for one RPC goes out in RPCs that each fit MaxRPCSize (sent whole, the Network
// refused it and all the peer's control was lost), its entries all there.
func TestOversizedControlGoesOutInRPCsThatFit(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.MaxMessageSize, cfg.MaxRPCSize = 4<<10, 16<<10
	net := &flakyNetwork{self: nid(1), peer: nid(2)}
	a := &relayActor{relayState: &relayState{}, cfg: cfg, net: net, log: zerolog.Nop(), peers: map[session.NodeID]bool{nid(2): true}}
	c := &Control{}
	for i := range 400 {
		c.Tree = append(c.Tree, TreeInfo{Topic: fmt.Sprint("topic-", i), Root: nid(1), Dist: 1})
		c.Graft = append(c.Graft, fmt.Sprint("topic-", i))
	}
	a.sendAll([]Send{{To: nid(2), Control: c}, {To: nid(2), Msg: &Message{Topic: "topic-0", Origin: nid(1), Data: []byte("x")}}})
	trees, grafts, msgs := 0, 0, 0
	for i, rpc := range net.sent {
		if n := proto.Size(rpc); n > cfg.MaxRPCSize {
			t.Fatalf("RPC %d: %d bytes, MaxRPCSize %d", i, n, cfg.MaxRPCSize)
		}
		trees += len(rpc.GetControl().GetTree())
		grafts += len(rpc.GetControl().GetGraft())
		msgs += len(rpc.Messages)
	}
	if len(net.sent) < 2 || trees != 400 || grafts != 400 || msgs != 1 {
		t.Fatalf("%d RPCs with %d tree reports, %d grafts, %d messages; want several, 400, 400, 1", len(net.sent), trees, grafts, msgs)
	}
}

// Subscriptions a peer's rate limit refuses are applied at the next heartbeat, in order with those that follow
// until then, and a hello among them is the whole list again (applyDeferred): dropped, they were lost for good.
func TestSubscriptionsOverTheRateLimitAreDeferredInOrder(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	cfg.PeerControlRate, cfg.PeerControlBurst = 0.001, 2 // one RPC of one subscription
	r := joined(t, cfg.Router, 2)
	a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
	sub := func(topic string, on bool) *messages.GossipRPC {
		return &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: topic, Subscribe: on}}}
	}
	a.handleRPC(nid(2), sub("b", true)) // the one token
	a.handleRPC(nid(2), sub("c", true)) // over the limit: deferred
	a.handleRPC(nid(2), sub("b", false))
	if topics := r.PeerTopics(nid(2)); !slices.Contains(topics, "b") || slices.Contains(topics, "c") {
		t.Fatalf("before the heartbeat the peer's topics are %q: want b (its unsubscription waits behind c)", topics)
	}
	a.applyDeferred(time.Now())
	if topics := r.PeerTopics(nid(2)); slices.Contains(topics, "b") || !slices.Contains(topics, "c") {
		t.Fatalf("after the heartbeat the peer's topics are %q: want c, not b", topics)
	}
	// A hello over the limit is its whole list: a topic it leaves out is left.
	a.handleRPC(nid(2), &messages.GossipRPC{Hello: true, Subscriptions: []*messages.GossipSubscription{{Topic: "d", Subscribe: true}}})
	a.applyDeferred(time.Now())
	if topics := r.PeerTopics(nid(2)); slices.Contains(topics, "c") || !slices.Contains(topics, "d") || slices.Contains(topics, topicA) {
		t.Fatalf("after a deferred hello listing d the peer's topics are %q: want d alone", topics)
	}
	// Counted as RPCs of control refused, not as messages dropped (RateLimited, until stop 54).
	if len(a.deferred) != 0 || a.stats.RateLimitedControl != 3 || a.stats.RateLimited != 0 {
		t.Fatalf("%d peers still deferred, %d RPCs of control and %d messages rate limited; want 0, 3 and 0",
			len(a.deferred), a.stats.RateLimitedControl, a.stats.RateLimited)
	}
}

// A GRAFT in an RPC the rate limit lets through comes after the peer's deferred subscription of the topic, which is
// applied first: the graft was answered with PRUNE, as of a peer not subscribed, and both sides backed off for
// PruneBackoff (a review's finding: a Join sends the subscription, then at once the graft).
func TestAGraftAfterADeferredSubscriptionIsTaken(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	r := joined(t, cfg.Router, 2)
	r.Join(t0, "b")
	net := &flakyNetwork{self: nid(1), peer: nid(2)}
	cfg.PeerControlRate, cfg.PeerControlBurst = 0.001, 2 // one RPC of one entry
	a := testShell(cfg, r, net, 1000, 1000)
	a.control.AllowN(nid(2), 2, time.Now()) // the peer's budget is spent
	a.handleRPC(nid(2), &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "b", Subscribe: true}}})
	if a.deferred[nid(2)] == nil {
		t.Fatal("the subscription over the limit was not deferred")
	}
	a.control = routing.NewRateLimiter[session.NodeID](0.001, 2, 10) // the budget came back before the heartbeat
	a.handleRPC(nid(2), &messages.GossipRPC{Control: &messages.GossipControl{Graft: []string{"b"}}})
	for _, rpc := range net.sent {
		if rpc.Control != nil && slices.ContainsFunc(rpc.Control.Prune, func(p *messages.GossipPrune) bool { return p.Topic == "b" }) {
			t.Fatal("the graft that followed the peer's deferred subscription was answered with PRUNE")
		}
	}
	if mesh, _ := r.MeshPeers("b"); !slices.Contains(mesh, nid(2)) {
		t.Fatalf("the mesh of b is %v, want the peer that grafted", mesh)
	}
}

// A message whose origin's clock runs ahead (up to MaxClockSkew it is timely) counts as delivered at once in the
// propagation-delay histogram: observed as negative, it took the histogram's sum down and its mean below zero.
func TestADelayFromAClockAheadCountsAsZero(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	r := joined(t, cfg.Router, 2)
	a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
	a.delay, a.hops = newHistogram(delayBoundsMs()), newHistogram(hopBounds())
	honest := &Message{Topic: topicA, Origin: nid(3), OriginTime: time.Now().Add(-20 * time.Millisecond).UnixNano(), Hops: 2}
	skewed := &Message{Topic: topicA, Origin: nid(4), OriginTime: time.Now().Add(29 * time.Second).UnixNano(), Hops: 2}
	if !r.Timely(time.Now(), skewed) {
		t.Fatal("the skewed message is not timely: the test's premise is wrong")
	}
	a.apply(Output{Deliver: []*Message{honest, skewed}})
	if a.delay.Count != 2 || a.delay.Sum < 20 || a.delay.Sum > 1000 || a.delay.Counts[0] != 1 {
		t.Fatalf("after a 20 ms delivery and one from a clock 29 s ahead: count %d, sum %.1f ms, buckets %v; want 2, the 20 ms alone, one in the first bucket",
			a.delay.Count, a.delay.Sum, a.delay.Counts)
	}
}

// A subscription's full queue is logged at its first drop, then at most every dropWarnInterval with the count since;
// what a burst dropped after the last line is logged by the heartbeat's flush once the interval is over (it waited
// for the next drop, maybe for ever: a review's finding).
func TestDroppedDeliveriesAreLoggedInBatchesAndFlushed(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	s := &Subscription{topic: "t"}
	t0 := time.Now()
	for i := range 500 { // 5 s of drops
		s.dropped.Add(1)
		s.warnDropped(log, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	s.flushDropped(log, t0.Add(6*time.Second)) // within the interval: nothing yet
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), `"dropped":1,`) {
		t.Fatalf("after the burst: %q, want one line for the first drop", buf.String())
	}
	s.flushDropped(log, t0.Add(11*time.Second))
	s.flushDropped(log, t0.Add(30*time.Second)) // nothing left
	if n := strings.Count(buf.String(), "\n"); n != 2 || !strings.Contains(buf.String(), `"dropped":499,"dropped_total":500`) {
		t.Fatalf("after the flushes: %q, want a second line with the other 499", buf.String())
	}
}

// RelayConfig.MaxMessageSize caps a message's data "published or received": a peer's message of exactly that size
// is taken; one byte more is refused as malformed (ErrMessageTooLarge) and penalises its sender, without reaching
// the router.
func TestReceivedMessageAtMaxMessageSizeIsTakenAndOneByteMoreRefused(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	cfg.MaxMessageSize = 1000
	cfg.VerifySignatures = false
	for _, size := range []int{cfg.MaxMessageSize, cfg.MaxMessageSize + 1} {
		r := joined(t, cfg.Router, 2)
		a := testShell(cfg, r, &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
		a.delay, a.hops = newHistogram(delayBoundsMs()), newHistogram(hopBounds())
		a.handleRPC(nid(2), &messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: topicA, Origin: nid(9).Bytes(),
			Seq: 1, OriginTime: time.Now().UnixNano(), Data: make([]byte, size)}}})
		want := [3]int{1, 0, 0} // delivered, malformed, penalty
		if size > cfg.MaxMessageSize {
			want = [3]int{0, 1, 1}
		}
		if got := [3]int{int(r.Stats().Delivered), int(a.stats.Malformed), r.peers[nid(2)].penalty}; got != want {
			t.Errorf("%d-byte message, limit %d: delivered, malformed, penalty %v, want %v", size, cfg.MaxMessageSize, got, want)
		}
	}
}

// A publication of exactly MaxMessageSize bytes is published; one byte more fails with ErrMessageTooLarge.
func TestPublicationAtMaxMessageSizeIsTakenAndOneByteMoreRefused(t *testing.T) {
	cfg := DefaultRelayConfig()
	cfg.Router.Self = nid(1)
	cfg.MaxMessageSize, cfg.SignMessages = 1000, false
	for _, size := range []int{cfg.MaxMessageSize, cfg.MaxMessageSize + 1} {
		a := testShell(cfg, joined(t, cfg.Router, 2), &flakyNetwork{self: nid(1), peer: nid(2)}, 1000, 1000)
		_, err, done := a.publish(&publishRequest{ctx: context.Background(), topic: topicA, data: make([]byte, size)})
		if tooLarge := errors.Is(err, ErrMessageTooLarge); !done || tooLarge != (size > cfg.MaxMessageSize) {
			t.Errorf("%d-byte publication, limit %d: error %v, done %v", size, cfg.MaxMessageSize, err, done)
		}
	}
}
