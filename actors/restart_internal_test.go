package actors

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/session"
)

// restartingCtx delivers Restarting, as protoactor does to a peer manager that panicked; it has nothing else.
type restartingCtx struct{ actor.Context }

func (restartingCtx) Message() any { return &actor.Restarting{} }

// newBarePeerManager returns a peer manager with no node behind it, for the restart's bookkeeping alone.
func newBarePeerManager() *peerManager {
	ctx, cancel := context.WithCancel(context.Background())
	return &peerManager{n: &Node{stats: newNodeStats(), bans: newNodeBans(16)}, ctx: ctx, cancel: cancel,
		wanted: make(map[session.NodeID]*wantedPeer), dialing: make(map[session.NodeID][]chan<- error),
		held: make(map[session.NodeID]time.Time), rewant: new([]rewanted), parked: make(map[*session.Conn]struct{})}
}

// TestTheRequestThePeerManagerFailedOnIsSettled: the request a peer manager panics on is answered or applied by the
// Restarting that follows (settleFailed), not lost with the instance: a Connect or a Send's dial waited for its
// context (for good under context.Background), and a Ban or Disconnect that had returned nil was undone by the
// restart's redials (a chaos audit's findings).
func TestTheRequestThePeerManagerFailedOnIsSettled(t *testing.T) {
	peer := session.NodeID{7}
	addr := session.PeerAddr{ID: peer, Addr: "192.0.2.7:4001"}

	m := newBarePeerManager()
	replies := make(chan error, 1)
	m.handling = &dialRequest{addr: addr, reply: replies} // the call that panicked
	m.Receive(restartingCtx{})
	select {
	case err := <-replies:
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("the dial the peer manager failed on: %v, want ErrPeerGone", err)
		}
	default:
		t.Fatal("the dial the peer manager failed on was not answered")
	}

	for _, failed := range []any{
		&banRequest{key: banKey{id: peer}, until: time.Now().Add(time.Hour), reason: "test"},
		&banRequest{key: banKey{ip: netip.MustParseAddr("192.0.2.7")}, until: time.Now().Add(time.Hour), reason: "test"},
		&disconnectRequest{id: peer},
	} {
		m := newBarePeerManager()
		m.wanted[peer] = &wantedPeer{addr: addr}
		if req, ok := failed.(*banRequest); ok { // Node.banNow puts it in the list before the peer manager has it
			m.n.bans.add(req.key, req.until, req.reason, time.Now())
		}
		m.handling = failed
		m.Receive(restartingCtx{})
		if len(*m.rewant) != 0 {
			t.Errorf("%T: the restart redials the peer the request dropped", failed)
		}
		if req, ok := failed.(*banRequest); ok {
			if _, banned := m.banned(peer, netip.MustParseAddr("192.0.2.7"), time.Now()); !banned {
				t.Errorf("ban of %s: not in force after the restart", req.key)
			}
		} else if !m.isHeld(peer, time.Now()) {
			t.Error("disconnect: the peer is not held after the restart")
		}
	}

	// A dial the panic struck after it joined the waiters is answered once, by stop: answering it twice blocked
	// the restart for good (a review's finding).
	m = newBarePeerManager()
	replies = make(chan error, 1)
	m.dialing[peer] = []chan<- error{replies}
	m.handling = &dialRequest{addr: addr, reply: replies}
	done := make(chan struct{})
	go func() { m.Receive(restartingCtx{}); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart blocked answering a dial twice")
	}
	if len(replies) != 1 {
		t.Fatalf("the waiting dial got %d answers, want 1", len(replies))
	}
}
