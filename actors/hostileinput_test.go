package actors_test

// What a peer's messages can leave behind: requests a protocol never answers, gossip sent as requests, a goodbye
// with a long text.

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// A request the protocol actor handles without answering is no longer tracked once handled: tracked until
// answered, each held its payload and its connection for good (a peer sending large requests to a one-way
// protocol grew the node's memory without bound, its connection long gone).
func TestAnUnansweredRequestIsNotKeptOnceHandled(t *testing.T) {
	net2 := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := net2.Nodes[0], net2.Nodes[1]
	var handled atomic.Int32
	if err := a.RegisterFunc("oneway/1", func(*actors.Inbound) { handled.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctxTimeout(t, 5*time.Second), a.Addr(), true); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		go func() { // each waits for a reply that never comes, until its context ends
			_, _ = b.Request(ctxTimeout(t, 2*time.Second), a.ID(), "oneway/1", wrapperspb.String(strings.Repeat("x", 4096)))
		}()
	}
	if err := testkit.Poll(ctxTimeout(t, 20*time.Second), 10*time.Second, func() bool { return handled.Load() == n }); err != nil {
		t.Fatalf("a handled %d requests of %d: %v", handled.Load(), n, err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.TrackedRequests("oneway/1") == 0 },
		"the handled requests are no longer tracked")
}

// Gossip is one-way: an RPC sent to the relay as a request is refused with an error reply, not served (the relay
// never answered one, and each stayed tracked).
func TestAGossipRPCSentAsARequestIsRefused(t *testing.T) {
	net2 := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := net2.Nodes[0], net2.Nodes[1]
	if _, err := a.Subscribe(ctxTimeout(t, 5*time.Second), "t", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctxTimeout(t, 5*time.Second), a.Addr(), true); err != nil {
		t.Fatal(err)
	}
	rpc := &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: "t", Subscribe: true}}}
	_, err := b.Request(ctxTimeout(t, 5*time.Second), a.ID(), gossip.Protocol, rpc)
	var remote *actors.RemoteError
	if !errors.As(err, &remote) || !strings.Contains(remote.Message, "no requests") {
		t.Fatalf("a gossip RPC sent as a request: %v, want an error reply", err)
	}
	if got := a.TrackedRequests(gossip.Protocol); got != 0 {
		t.Fatalf("%d gossip requests tracked", got)
	}
}

// A peer's goodbye text is clipped, as every other text a peer chooses, before it reaches events and logs.
func TestAGoodbyesTextIsClipped(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	events := watchEvents(t, a)
	sc, id := rawPeer(t, a)
	bye, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Disconnect{Disconnect: &messages.Disconnect{
		Reason: messages.DisconnectReason_DISCONNECT_REASON_REQUESTED, Detail: strings.Repeat("y", 100_000),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(bye); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return events.disconnects(id) == 1 }, "a saw the goodbye")
	if d := events.disconnectsFrom(id)[0].GetDetail(); len(d) > 300 {
		t.Fatalf("the goodbye's detail reached the event whole: %d bytes", len(d))
	}
}
