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
