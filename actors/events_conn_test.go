package actors_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
	"github.com/actormesh/actormesh/testkit/poll"
)

// When both sides dial at once, a peer has two connections for a moment and one is closed as a duplicate: its
// PeerDisconnected says the peer is still connected, and pairs with its PeerConnected by ConnId, so that an
// application following the events knows the peer is connected (it read it as gone before).
func TestPeerEventsOfADuplicateConnectionSayThePeerIsStillConnected(t *testing.T) {
	duplicates := 0
	for round := 0; round < 40 && duplicates < 3; round++ {
		nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, c *actors.Config) { c.DisableDiscovery = true }))
		a, b := nw.Nodes[0], nw.Nodes[1]
		ev := watchEvents(t, a)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), true) }()
		go func() { defer wg.Done(); _ = b.Connect(ctxTimeout(t, 5*time.Second), a.Addr(), true) }()
		wg.Wait()
		// A round counts once both connections reached a and one of them closed: when the dial of the side that
		// loses the tie-break reached it second, a refused it unregistered, with no event (such rounds are skipped).
		if poll.Wait(context.Background(), 500*time.Millisecond, func() bool {
			return ev.connects(b.ID()) == 2 && ev.disconnects(b.ID()) == 1
		}) != nil {
			nw.Close()
			continue
		}
		ev.mu.Lock()
		open := map[uint64]bool{}
		connected := false
		for _, e := range ev.events {
			switch e := e.(type) {
			case *messages.PeerConnected:
				if open[e.ConnId] {
					t.Fatalf("round %d: connection %d reported connected twice", round, e.ConnId)
				}
				open[e.ConnId], connected = true, true
			case *messages.PeerDisconnected:
				if !open[e.ConnId] {
					t.Fatalf("round %d: a disconnect of connection %d, which no PeerConnected announced", round, e.ConnId)
				}
				delete(open, e.ConnId)
				if e.Reason == messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION {
					duplicates++
				}
				if e.StillConnected != (len(open) > 0) {
					t.Fatalf("round %d: StillConnected %v with %d connections left", round, e.StillConnected, len(open))
				}
				connected = e.StillConnected
			}
		}
		ev.mu.Unlock()
		if len(open) != 1 || !connected {
			t.Fatalf("round %d: the events leave %d connections open and the peer connected=%v; want 1 and true", round, len(open), connected)
		}
		nw.Close()
	}
	if duplicates == 0 {
		t.Fatal("no simultaneous dial made a duplicate connection in 40 rounds: the test did not exercise it")
	}
}
