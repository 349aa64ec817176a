package actors_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A node's first exchanges with its bootnode carry its record, so the bootnode knows it at once, even with a
// DataDir (whose record.seq Start writes): the record used to reach the routing actor only at the end of Start,
// after the bootstrapper's first exchanges, and the bootnode learned the joiner ~2 s later, from the next step;
// meanwhile nobody could look the joiner up. Here the joiners' later steps are an hour away. The old order failed
// this test in most runs without the race detector; with it, the handshake slows down more than Start's end, and
// the old order won the race in most runs.
func TestAJoinersFirstExchangeCarriesItsRecord(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
	}))
	boot := nw.Nodes[0]
	for i := range 6 {
		cfg := actors.DefaultConfig()
		cfg.ListenAddr, cfg.ExemptLoopbackThrottle, cfg.Routing.Table.ExemptLoopback = "127.0.0.1:0", true, true
		cfg.DataDir = t.TempDir()
		cfg.Bootstrap.Bootnodes = []session.PeerAddr{boot.Addr()}
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval = time.Hour
		joiner, err := actors.NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = joiner.Close() })
		if err := joiner.Start(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		var snap routing.Snapshot
		testkit.WaitFor(t, 10*time.Second, func() bool {
			var err error
			snap, err = boot.RoutingTable(ctxTimeout(t, time.Second))
			return err == nil && tableHolds(snap, joiner.ID())
		}, "the bootnode to know joiner %d", i)
	}
}

func tableHolds(s routing.Snapshot, id session.NodeID) bool {
	for _, e := range s.Entries {
		if e.ID == id {
			return true
		}
	}
	return false
}

// WaitPeers waits for the node's first connections, made in the background after Start, and says why it stopped
// waiting otherwise.
func TestWaitPeers(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
	}))
	boot := nw.Nodes[0]
	cfg := actors.DefaultConfig()
	cfg.ListenAddr, cfg.ExemptLoopbackThrottle, cfg.Routing.Table.ExemptLoopback = "127.0.0.1:0", true, true
	cfg.Bootstrap.Bootnodes = []session.PeerAddr{boot.Addr()}
	joiner, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := joiner.WaitPeers(ctxTimeout(t, time.Second), 1); !errors.Is(err, actors.ErrNotStarted) {
		t.Fatalf("WaitPeers before Start: %v, want ErrNotStarted", err)
	}
	if err := joiner.Start(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := joiner.WaitPeers(ctxTimeout(t, 10*time.Second), 1); err != nil {
		t.Fatalf("WaitPeers(1) with a bootnode: %v", err)
	}
	if !joiner.Connected(boot.ID()) {
		t.Fatal("WaitPeers(1) returned before the joiner was connected to its bootnode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := joiner.WaitPeers(ctx, 2); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "have 1") {
		t.Fatalf("WaitPeers(2) with one peer to be had: %v, want DeadlineExceeded saying it has 1", err)
	}
	done := make(chan error, 1)
	go func() { done <- joiner.WaitPeers(context.Background(), 2) }()
	if err := joiner.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, actors.ErrClosed) {
			t.Fatalf("WaitPeers when the node closed: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitPeers went on waiting after Close")
	}
	if err := joiner.WaitPeers(ctxTimeout(t, time.Second), 0); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("WaitPeers after Close: %v, want ErrClosed", err)
	}
}
