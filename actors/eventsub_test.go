package actors_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// unconnectedPair starts two nodes with discovery off, not connected to each other.
func unconnectedPair(t *testing.T) (a, b *actors.Node) {
	t.Helper()
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	return nw.Nodes[0], nw.Nodes[1]
}

// subscribe returns a's event subscription of the given size, closed at the end of the test.
func subscribe(t *testing.T, n *actors.Node, size int) *actors.EventSubscription {
	t.Helper()
	sub, err := n.Events(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// nextEvent returns the next event of sub, failing the test if none comes within 10 s or C is closed.
func nextEvent(t *testing.T, sub *actors.EventSubscription) proto.Message {
	t.Helper()
	select {
	case ev, ok := <-sub.C:
		if !ok {
			t.Fatal("the subscription's channel was closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return nil
	}
}

// The goroutine that reads Events may call the node's methods: here it answers a peer's connection by connecting
// to another, which waits for the peer manager. The same call from SubscribeEvents' callback, which runs on the peer
// manager's goroutine, deadlocks it until the call's context ends.
func TestAnEventReaderMayCallTheNode(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	sub := subscribe(t, a, 16)
	if err := b.Connect(ctxTimeout(t, 10*time.Second), a.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if !connectedTo(nextEvent(t, sub), b.ID()) {
		t.Fatal("the first event is not b's PeerConnected")
	}
	// A short context: a deadlock shows as its error, not as the test's timeout.
	if err := a.Connect(ctxTimeout(t, 3*time.Second), c.Addr(), false); err != nil {
		t.Fatalf("Connect from the event reader: %v", err)
	}
	if !connectedTo(nextEvent(t, sub), c.ID()) {
		t.Fatal("the second event is not c's PeerConnected")
	}
}

// connectedTo tells whether ev is a PeerConnected of peer.
func connectedTo(ev proto.Message, peer session.NodeID) bool {
	up, ok := ev.(*messages.PeerConnected)
	id, _ := session.NodeIDFromBytes(up.GetPeerId())
	return ok && id == peer
}

// An event that finds the channel full is dropped and counted, and the events after the reader caught up arrive.
func TestAFullEventSubscriptionCountsWhatItDrops(t *testing.T) {
	a, b := unconnectedPair(t)
	sub := subscribe(t, a, 1)
	ctx := ctxTimeout(t, 20*time.Second)
	if err := b.Connect(ctx, a.Addr(), false); err != nil { // PeerConnected fills the channel
		t.Fatal(err)
	}
	if err := b.Disconnect(a.ID()); err != nil { // PeerDisconnected finds it full
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return sub.Dropped() == 1 }, "the disconnect counted as dropped")
	if _, ok := nextEvent(t, sub).(*messages.PeerConnected); !ok {
		t.Fatal("the event kept is not the first one")
	}
	if err := b.Connect(ctx, a.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if _, ok := nextEvent(t, sub).(*messages.PeerConnected); !ok {
		t.Fatal("no event once the reader caught up")
	}
	if got := sub.Dropped(); got != 1 {
		t.Fatalf("Dropped %d, want 1", got)
	}
}

// Close closes every subscription's channel once the events of the shutdown are in it; a subscription's own Close
// closes its channel at once, and may be called again.
func TestEventSubscriptionsEnd(t *testing.T) {
	a, b := unconnectedPair(t)
	own := subscribe(t, a, 16)
	atClose := subscribe(t, a, 16)
	if err := b.Connect(ctxTimeout(t, 10*time.Second), a.Addr(), false); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, own)
	own.Close()
	own.Close()
	if _, ok := <-own.C; ok {
		t.Fatal("an event after the subscription's Close")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var last proto.Message
	for ev := range atClose.C { // ends: Close closed it
		last = ev
	}
	if down, ok := last.(*messages.PeerDisconnected); !ok || down.GetReason() != messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN {
		t.Fatalf("last event %v, want the shutdown's PeerDisconnected", last)
	}
	if _, err := a.Events(1); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Events after Close: %v, want ErrClosed", err)
	}
}

// Events refuses a buffer it cannot make.
func TestEventsRefusesImpossibleSizes(t *testing.T) {
	n := unstartedNode(t)
	for _, size := range []int{0, -1, actors.MaxEventBuffer + 1} {
		if _, err := n.Events(size); !errors.Is(err, actors.ErrInvalidArgument) {
			t.Errorf("Events(%d): %v, want ErrInvalidArgument", size, err)
		}
	}
}
