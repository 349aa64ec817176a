package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// A discovery request that fails because the node is closing is marked routing.ErrPeerBusy: it says nothing against
// the peer, and neither a lookup nor a liveness check holds it against the peer's table entry, which the routing
// actor saves to the peer store as it stops. The peer manager may stop before the routing actor, and the requests in
// flight then fail with ErrClosed or ErrPeerGone.
func TestADiscoveryRequestOfAClosingNodeSaysNothingAgainstThePeer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = routingNetwork{n}.Request(ctx, session.NodeID{7}, routing.Protocol, &messages.FindNode{})
	if !errors.Is(err, ErrClosed) || !errors.Is(err, routing.ErrPeerBusy) {
		t.Fatalf("a closed node's discovery request failed with %v, want ErrClosed marked routing.ErrPeerBusy", err)
	}
}

// A discovery request whose context ends while its dial still waits for a free outbound slot (on a loaded host the
// peer manager answers a waiter late, past its caller's deadline) tells the time it waited (routing.LocalWaitError):
// that time was this node's, and the routing actor counts the request as sent that much later (checkStalled). Only
// the waits that ended with a slot were counted, and such a liveness check failed as a timeout held against the
// peer (TestALivenessCheckWithoutAFreeSlotEvictsNobody, 1 run in 20 under load).
func TestADiscoveryRequestThatGaveUpWaitingForASlotTellsTheWait(t *testing.T) {
	const giveUp = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func(maxOut int) *Node {
		cfg := DefaultConfig()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.DisableDiscovery = true
		cfg.MaxOutboundPeers = maxOut
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	a, holder, c := start(1), start(8), start(8)
	if err := a.Connect(ctx, holder.Addr(), true); err != nil { // a's one outbound slot, kept
		t.Fatal(err)
	}
	routingNetwork{a}.AddAddress(c.ID(), c.Addr().Addr)
	reqCtx, giveUpNow := context.WithTimeout(ctx, 10*time.Second) // the slot wait's own bound comes later
	defer giveUpNow()
	stop := time.AfterFunc(giveUp, giveUpNow)
	defer stop.Stop()
	_, err := routingNetwork{a}.Request(reqCtx, c.ID(), routing.Protocol, &messages.FindNode{})
	var lw *routing.LocalWaitError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &lw) || lw.Waited < giveUp*3/4 {
		t.Fatalf("a request given up after %v waiting for a slot failed with %v, want context.Canceled and a LocalWaitError of about %v",
			giveUp, err, giveUp)
	}
}
