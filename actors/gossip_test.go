package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// fastGossip shortens the gossip timings for tests: 100ms heartbeats, announcements after 50ms.
func fastGossip(cfg *actors.Config) {
	cfg.Gossip.Router.HeartbeatInterval = 100 * time.Millisecond
	cfg.Gossip.Router.GossipDelay = 50 * time.Millisecond
	cfg.Gossip.Router.IWantTimeout = 200 * time.Millisecond
}

// gossipNetwork starts n nodes without discovery, with fast gossip timings, connected along edges.
func gossipNetwork(t *testing.T, n int, edges [][2]int, configure func(i int, cfg *actors.Config)) *testkit.Network {
	t.Helper()
	nw := testkit.NewNetwork(t, n, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		fastGossip(cfg)
		if configure != nil {
			configure(i, cfg)
		}
	}))
	nw.ConnectAll(edges)
	return nw
}

// waitBanned waits until node has banned peer, for a reason containing why.
func waitBanned(t *testing.T, node *actors.Node, peer session.NodeID, why, what string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return slices.ContainsFunc(node.Bans(), func(b actors.Ban) bool {
			return b.ID == peer && strings.Contains(b.Reason, why)
		})
	}, "%s", what)
}

// inbox records what a subscription delivered.
type inbox struct {
	mu    sync.Mutex
	count map[gossip.MsgID]int
	last  map[gossip.MsgID]*gossip.Delivery
	order []string
}

func newInbox() *inbox {
	return &inbox{count: make(map[gossip.MsgID]int), last: make(map[gossip.MsgID]*gossip.Delivery)}
}

func (b *inbox) handle(d *gossip.Delivery) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count[d.ID]++
	b.last[d.ID] = d
	if s, ok := d.Payload.(*wrapperspb.StringValue); ok {
		b.order = append(b.order, s.GetValue())
	}
}

func (b *inbox) times(id gossip.MsgID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count[id]
}

func (b *inbox) get(id gossip.MsgID) *gossip.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last[id]
}

func (b *inbox) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.count)
}

func (b *inbox) strings() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...)
}

func subscribeAll(t *testing.T, nodes []*actors.Node, topic string, opts ...gossip.SubscribeOption) []*inbox {
	t.Helper()
	boxes := make([]*inbox, len(nodes))
	for i, n := range nodes {
		boxes[i] = newInbox()
		if _, err := n.Subscribe(ctxTimeout(t, 5*time.Second), topic, boxes[i].handle, opts...); err != nil {
			t.Fatalf("node %d subscribe: %v", i, err)
		}
	}
	return boxes
}

// waitMeshes waits until every node sees at least min subscribed peers on topic.
func waitMeshes(t *testing.T, nodes []*actors.Node, topic string, min int) {
	t.Helper()
	for i, n := range nodes {
		if err := n.WaitTopicPeers(ctxTimeout(t, 10*time.Second), topic, min); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

func TestPublishReachesEverySubscriberOnceWithOriginAndHops(t *testing.T) {
	const n = 6
	nw := gossipNetwork(t, n, testkit.Line(n), nil)
	boxes := subscribeAll(t, nw.Nodes, "blocks")
	waitMeshes(t, nw.Nodes, "blocks", 1)

	id, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "blocks", wrapperspb.String("block 1"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		for _, b := range boxes {
			if b.times(id) == 0 {
				return false
			}
		}
		return true
	}, "every subscriber got the message")
	for i, b := range boxes {
		d := b.get(id)
		if got := b.times(id); got != 1 {
			t.Errorf("node %d got the message %d times", i, got)
		}
		if d.Origin != nw.Nodes[0].ID() || d.Seq == 0 || d.Seq != boxes[0].get(id).Seq || d.Topic != "blocks" {
			t.Errorf("node %d: origin %s seq %d topic %q", i, d.Origin.Short(), d.Seq, d.Topic)
		}
		if s, ok := d.Payload.(*wrapperspb.StringValue); !ok || s.GetValue() != "block 1" {
			t.Errorf("node %d: payload %v (%v)", i, d.Payload, d.Err)
		}
		// On a line, node i is i hops from the publisher.
		if d.Hops != uint32(i) || d.Local != (i == 0) {
			t.Errorf("node %d: hops %d, local %v", i, d.Hops, d.Local)
		}
		if i > 0 && (d.Delay <= 0 || d.Delay > 10*time.Second) {
			t.Errorf("node %d: delay %v", i, d.Delay)
		}
	}
	if _, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "blocks", wrapperspb.Bytes(make([]byte, 600<<10))); !errors.Is(err, gossip.ErrMessageTooLarge) {
		t.Errorf("publishing 600 KiB: %v, want ErrMessageTooLarge", err)
	}
	st, err := nw.Nodes[n-1].GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Router.Delivered != 1 || st.Delay.Count != 1 || st.Hops.Count != 1 || st.Hops.Max != n-1 {
		t.Errorf("last node stats: delivered %d, delay samples %d, hops %d/max %v", st.Router.Delivered, st.Delay.Count, st.Hops.Count, st.Hops.Max)
	}
}

func TestPublishBeforeAnyPeerSubscribedFailsClearly(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	boxA := newInbox()
	if _, err := a.Subscribe(ctxTimeout(t, 5*time.Second), "t", boxA.handle); err != nil {
		t.Fatal(err)
	}
	_, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("early"))
	if !errors.Is(err, gossip.ErrNoPeers) {
		t.Fatalf("publish with no subscribed peer: %v, want ErrNoPeers", err)
	}
	if boxA.times(gossip.MsgID{}) != 0 || len(boxA.strings()) != 0 {
		t.Fatal("a failed publication was delivered locally")
	}
	boxB := newInbox()
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", boxB.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 10*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	id, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("early")) // the same payload, retried
	if err != nil {
		t.Fatalf("retry after the peer joined: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return boxB.times(id) == 1 }, "b got the retried message")
	if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("early")); !errors.Is(err, gossip.ErrDuplicate) {
		t.Fatalf("republishing the same payload: %v, want ErrDuplicate", err)
	}
}

// An equal message is encoded alike every time, so a repeat is refused as a duplicate: a message with a map field
// (the fields of a structpb.Struct) was encoded in a new order each time inside its Any, got a new id, and was
// delivered again.
func TestRepublishingAMessageWithAMapIsADuplicate(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a := nw.Nodes[0]
	subscribeAll(t, nw.Nodes, "t")
	waitMeshes(t, nw.Nodes, "t", 1)
	fields := map[string]any{}
	for i := range 16 {
		fields[fmt.Sprint("k", i)] = float64(i)
	}
	msg, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", msg)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if id, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", msg); !errors.Is(err, gossip.ErrDuplicate) {
			t.Fatalf("republishing an equal message: id %s (first %s), %v; want ErrDuplicate", id, first, err)
		}
	}
}

func TestInvalidMessageStopsAtFirstHopAndPenalisesSender(t *testing.T) {
	// a - b - c: b and c reject "bad" payloads.
	nw := gossipNetwork(t, 3, testkit.Line(3), nil)
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	rejectBad := gossip.WithValidator(func(_ context.Context, d *gossip.Delivery) gossip.Verdict {
		if s, ok := d.Payload.(*wrapperspb.StringValue); ok && s.GetValue() != "" && s.GetValue()[0] == 'b' {
			return gossip.Reject
		}
		return gossip.Accept
	})
	boxA := newInbox()
	if _, err := a.Subscribe(ctxTimeout(t, 5*time.Second), "t", boxA.handle); err != nil {
		t.Fatal(err)
	}
	boxes := subscribeAll(t, []*actors.Node{b, c}, "t", rejectBad)
	waitMeshes(t, nw.Nodes, "t", 1)

	for i := range 2 {
		if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String(fmt.Sprintf("bad %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	good, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("good"))
	if err != nil {
		t.Fatal(err)
	}
	// b relays in order, so once c has "good", anything b relayed before it has arrived too.
	testkit.WaitFor(t, 10*time.Second, func() bool { return boxes[1].times(good) == 1 }, "c got the good message")
	for i, box := range boxes {
		if got := box.strings(); len(got) != 1 || got[0] != "good" {
			t.Errorf("subscriber %d delivered %v, want only the good message", i, got)
		}
	}
	// b's verdicts come from its validators' goroutines: "good" may be accepted and relayed before the second
	// "bad" is rejected.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		sb, err := b.GossipStats(ctxTimeout(t, 5*time.Second))
		return err == nil && sb.Router.Rejected >= 2
	}, "b rejected both invalid messages")
	sb, _ := b.GossipStats(ctxTimeout(t, 5*time.Second))
	sc, _ := c.GossipStats(ctxTimeout(t, 5*time.Second))
	if sb.Router.Rejected != 2 || sc.Router.Rejected != 0 {
		t.Errorf("rejections: b %d (want 2), c %d (want 0: nothing invalid reached it)", sb.Router.Rejected, sc.Router.Rejected)
	}

	// The third invalid message reaches PenaltyThreshold (3): b bans a.
	if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("bad 3")); err != nil {
		t.Fatal(err)
	}
	waitBanned(t, b, a.ID(), "", "b banned a after three invalid messages")
	testkit.WaitFor(t, 10*time.Second, func() bool { return !b.Connected(a.ID()) }, "b disconnected a")
}

func TestForgedSignatureIsRejectedBeforeItIsSeen(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	hostile, victim := nw.Nodes[0], nw.Nodes[1]
	box := newInbox()
	if _, err := victim.Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	if err := hostile.WaitTopicPeers(ctxTimeout(t, 10*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	// The hostile node speaks the gossip protocol by hand: a message claiming a third node as origin.
	third, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("\x0a\x03abc")
	forged := &gossip.Message{Topic: "t", Data: data, Origin: third.NodeID(), Seq: 1, OriginTime: time.Now().UnixNano()}
	bad := &messages.GossipMessage{Topic: "t", Data: data, Origin: third.NodeID().Bytes(), Seq: 1, OriginTime: forged.OriginTime,
		Signature: hostile.ID().Bytes()} // not a signature by the claimed origin
	if err := hostile.Send(ctxTimeout(t, 5*time.Second), victim.ID(), gossip.Protocol, &messages.GossipRPC{Messages: []*messages.GossipMessage{bad}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		st, err := victim.GossipStats(ctxTimeout(t, 5*time.Second))
		return err == nil && st.BadSignatures == 1
	}, "victim counted the bad signature")
	// The genuine message with the same id still gets through: the forgery did not mark it seen.
	good := &messages.GossipMessage{Topic: "t", Data: data, Origin: third.NodeID().Bytes(), Seq: 1, OriginTime: forged.OriginTime,
		Signature: third.Sign(gossip.SignedBytes(forged))}
	if err := hostile.Send(ctxTimeout(t, 5*time.Second), victim.ID(), gossip.Protocol, &messages.GossipRPC{Messages: []*messages.GossipMessage{good}}); err != nil {
		t.Fatal(err)
	}
	id := gossip.DefaultMsgID(forged)
	testkit.WaitFor(t, 10*time.Second, func() bool { return box.times(id) == 1 }, "victim delivered the genuine message")
	if d := box.get(id); box.total() != 1 || d.Origin != third.NodeID() {
		t.Fatalf("delivered %d messages, from %s", box.total(), d.Origin.Short())
	}
	if st, err := victim.GossipStats(ctxTimeout(t, 5*time.Second)); err != nil || st.Verified != 2 {
		t.Fatalf("signatures checked: %d, %v (want 2: the forgery and the genuine message)", st.Verified, err)
	}
}

func TestCancelledSubscriptionStopsDeliveriesAndLeavesTopic(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	subscribeAll(t, []*actors.Node{a}, "t")
	box := newInbox()
	sub, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle)
	if err != nil {
		t.Fatal(err)
	}
	waitMeshes(t, nw.Nodes, "t", 1)
	sub.Cancel()
	sub.Cancel() // idempotent
	testkit.WaitFor(t, 10*time.Second, func() bool {
		info, err := a.Topic(ctxTimeout(t, 5*time.Second), "t")
		return err == nil && len(info.Peers) == 0
	}, "a saw b leave the topic")
	if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("after")); !errors.Is(err, gossip.ErrNoPeers) {
		t.Fatalf("publish after the only peer left: %v, want ErrNoPeers", err)
	}
	if info, _ := b.Topic(ctxTimeout(t, 5*time.Second), "t"); info.Joined {
		t.Fatal("b still joined after cancelling its only subscription")
	}
}

func TestGossipConfigIsValidated(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.Gossip.Router.D = 0
	if _, err := actors.NewNode(cfg); !errors.Is(err, actors.ErrInvalidConfig) {
		t.Fatalf("D=0: %v", err)
	}
	cfg = actors.DefaultConfig()
	cfg.Gossip.PenaltyBan = 0
	if _, err := actors.NewNode(cfg); !errors.Is(err, actors.ErrInvalidConfig) {
		t.Fatalf("PenaltyBan=0: %v", err)
	}
}

// TestProtocolActorReceivesTopicMessages subscribes a protocol actor to a topic: it gets each message as an
// *actors.TopicMessage in its mailbox, one at a time, survives a panic on one of them (its supervisor restarts it
// and the next still comes), and its subscription ends with it.
func TestProtocolActorReceivesTopicMessages(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	got := make(chan *actors.TopicMessage, 16)
	register(t, b, "watch/1", actor.PropsFromFunc(func(ctx actor.Context) {
		m, ok := ctx.Message().(*actors.TopicMessage)
		if !ok {
			return
		}
		switch m.Payload.(*wrapperspb.StringValue).GetValue() {
		case "panic":
			panic("a protocol actor failing on a topic message")
		case "stop":
			ctx.Stop(ctx.Self())
			return
		}
		got <- m
	}))
	if _, err := b.SubscribeProtocol(ctxTimeout(t, 5*time.Second), "t", "echo/9"); !errors.Is(err, actors.ErrNotRegistered) {
		t.Fatalf("subscribing an unregistered protocol: %v, want ErrNotRegistered", err)
	}
	if _, err := b.SubscribeProtocol(ctxTimeout(t, 5*time.Second), "t", gossip.Protocol); !errors.Is(err, actors.ErrNotRegistered) {
		t.Fatalf("subscribing the node's own gossip actor: %v, want ErrNotRegistered", err)
	}
	if _, err := b.SubscribeProtocol(ctxTimeout(t, 5*time.Second), "t", "watch/1"); err != nil {
		t.Fatal(err)
	}
	subscribeAll(t, []*actors.Node{a}, "t")
	waitMeshes(t, nw.Nodes, "t", 1)

	for _, s := range []string{"one", "panic", "two"} {
		if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String(s)); err != nil {
			t.Fatalf("publish %q: %v", s, err)
		}
	}
	for _, want := range []string{"one", "two"} {
		select {
		case m := <-got:
			if s := m.Payload.(*wrapperspb.StringValue).GetValue(); s != want || m.Origin != a.ID() || m.Hops != 1 || m.Topic != "t" {
				t.Fatalf("actor got %q from %s after %d hops on %q, want %q from a after 1 hop", s, m.Origin.Short(), m.Hops, m.Topic, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the actor did not get %q", want)
		}
	}

	if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("stop")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		info, err := a.Topic(ctxTimeout(t, 5*time.Second), "t")
		return err == nil && len(info.Peers) == 0
	}, "b left the topic once its actor stopped")
	if _, err := b.SubscribeProtocol(ctxTimeout(t, 5*time.Second), "t", "watch/1"); !errors.Is(err, actors.ErrNotRegistered) {
		t.Fatalf("subscribing a stopped actor's protocol: %v, want ErrNotRegistered", err)
	}
	if len(got) != 0 {
		t.Fatalf("%d unexpected messages reached the actor", len(got))
	}
}

// A protocol actor that subscribes to topics and cancels them over its life leaves nothing behind for the
// subscriptions it cancelled (each kept its queue of deliveries until the actor stopped).
func TestCancelledProtocolSubscriptionsAreForgotten(t *testing.T) {
	n := testkit.NewNetwork(t, 1).Nodes[0]
	register(t, n, "watch/1", actor.PropsFromFunc(func(actor.Context) {}))
	for i := range 50 {
		sub, err := n.SubscribeProtocol(ctxTimeout(t, 5*time.Second), fmt.Sprint("t", i%3), "watch/1")
		if err != nil {
			t.Fatal(err)
		}
		sub.Cancel()
	}
	if got := n.ProtocolSubscriptions("watch/1"); got > 1 {
		t.Fatalf("%d subscriptions kept after 50 were made and cancelled, want at most the last one", got)
	}
}

// Validators given together must all accept, in order: the first verdict other than Accept is the verdict. Before,
// the last WithValidator replaced the others.
func TestValidatorsGivenTogetherMustAllAccept(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	publisher, checker := nw.Nodes[0], nw.Nodes[1]
	ctx := ctxTimeout(t, 20*time.Second)
	var first, second atomic.Int32
	var delivered atomic.Int32
	_, err := checker.Subscribe(ctx, "t", func(*gossip.Delivery) { delivered.Add(1) },
		gossip.WithValidator(func(_ context.Context, d *gossip.Delivery) gossip.Verdict {
			first.Add(1)
			if d.Payload.(*wrapperspb.StringValue).GetValue() == "ignored by the first" {
				return gossip.Ignore
			}
			return gossip.Accept
		}),
		gossip.WithValidator(func(_ context.Context, d *gossip.Delivery) gossip.Verdict {
			second.Add(1)
			if d.Payload.(*wrapperspb.StringValue).GetValue() == "rejected by the second" {
				return gossip.Reject
			}
			return gossip.Accept
		}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Subscribe(ctx, "t", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := publisher.WaitTopicPeers(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"ignored by the first", "rejected by the second", "fine"} {
		if _, err := publisher.Publish(ctx, "t", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return delivered.Load() == 1 }, "the accepted message delivered")
	st, err := checker.GossipStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Router.Rejected != 1 || st.Router.Ignored != 1 || first.Load() != 3 || second.Load() != 2 {
		t.Fatalf("rejected %d, ignored %d, first validator ran %d times, second %d: want 1, 1, 3, 2",
			st.Router.Rejected, st.Router.Ignored, first.Load(), second.Load())
	}
}
