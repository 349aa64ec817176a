package gossip

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
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
	props, err := NewRelayProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(props)
	defer func() { _ = system.Root.StopFuture(pid).Wait() }()
	done := make(chan struct{})
	defer close(done)
	relay := NewRelay(system.Root, pid, done)

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
	a := &relayActor{net: net, log: zerolog.Nop()}
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
	a := &relayActor{net: net, log: zerolog.Nop()}
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
