package actors

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

var testWindow = session.Window{ProtocolMessages: 4, ProtocolBytes: 100, AppMessages: 6, AppBytes: 150}

func TestFitsWindow(t *testing.T) {
	for _, tc := range []struct {
		name             string
		outstanding, app flowCount
		size             int64
		want             bool
	}{
		{"nothing outstanding: any size", flowCount{}, flowCount{}, 10_000, true},
		{"an idle protocol: any size within the application's window", flowCount{}, flowCount{2, 100}, 50, true},
		{"an idle protocol: not past the application's window", flowCount{}, flowCount{2, 100}, 51, false},
		{"within both", flowCount{1, 50}, flowCount{2, 80}, 50, true},
		{"past the protocol's bytes", flowCount{1, 50}, flowCount{1, 50}, 51, false},
		{"past the protocol's messages", flowCount{4, 4}, flowCount{4, 4}, 1, false},
		{"past the application's bytes", flowCount{1, 10}, flowCount{3, 140}, 11, false},
		{"past the application's messages", flowCount{1, 10}, flowCount{6, 20}, 1, false},
	} {
		if got := fitsWindow(testWindow, tc.outstanding, tc.app, tc.size); got != tc.want {
			t.Errorf("%s: fitsWindow = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Whatever order the sender's goroutines queue the messages they took in, the receiver takes them: a message to
// an idle protocol used to skip the application's window, so one taken after another that had counted the
// application's total without it arrived first, and the receiver found the other past the window (an audit's
// finding: an honest sender disconnected with FLOW_CONTROL).
func TestAnyOrderOfTakenMessagesFitsTheReceiver(t *testing.T) {
	s, r := &sendWindows{window: testWindow}, &recvWindows{window: testWindow}
	var fa, fb recvFlow
	take := func(protocol string, size int64) bool {
		ok, _, _ := s.tryTake(protocol, size)
		return ok
	}
	if !take("b", 50) || r.take(&fb, 50) != taken { // delivered
		t.Fatal("the first message")
	}
	if !take("b", 50) { // goroutine 1: the application's 100 of 150
		t.Fatal("the second message")
	}
	if take("a", 100) { // goroutine 2: a is idle, but 100 more is past the application's 150
		t.Fatal("a message to an idle protocol past the application's window was taken")
	}
	if !take("a", 50) {
		t.Fatal("a message to an idle protocol within the application's window")
	}
	// Goroutine 2's message queued first.
	if r.take(&fa, 50) != taken || r.take(&fb, 50) != taken {
		t.Fatal("the receiver refused messages the sender took, in another order")
	}
}

func TestSendWindowsWaitForGrants(t *testing.T) {
	s := &sendWindows{window: testWindow}
	never := make(chan struct{})
	var waits, firsts, signals int
	blocked := func(first, signal bool) {
		waits++
		if first {
			firsts++
		}
		if signal {
			signals++
		}
	}
	if err := s.take(context.Background(), "a", 500, never, blocked); err != nil || waits != 0 { // one message of any size
		t.Fatal(err, waits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := s.take(ctx, "a", 1, never, blocked)
	if waits != 1 || firsts != 1 || signals != 1 || !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("take past the window: blocked %d times (%d signals), %v; want once, then ErrOverloaded once ctx ends", waits, signals, err)
	}
	// The peer is told once per grant that the node waits, however many senders wait.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.take(ctx, "b", 1, never, blocked); !errors.Is(err, ErrOverloaded) || waits != 2 || signals != 1 {
		t.Fatalf("a second sender waiting: %v, blocked %d times, %d signals; want no second signal", err, waits, signals)
	}
	done := make(chan error, 1)
	go func() { done <- s.take(context.Background(), "a", 60, never, nil) }()
	if err := s.grant("a", flowCount{1, 500}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("take after the grant: %v", err)
	}
	if err := s.take(context.Background(), "b", 40, never, nil); err != nil { // another protocol: within the application's window
		t.Fatal(err)
	}
	if _, _, signal := s.tryTake("c", 100); !signal {
		t.Fatal("no signal after a grant")
	}
	closing := make(chan struct{})
	close(closing)
	if err := s.take(context.Background(), "a", 100, closing, nil); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("take on a closing connection: %v, want ErrPeerGone", err)
	}
}

func TestSendWindowsRefuseGrantsBeyondOutstanding(t *testing.T) {
	s := &sendWindows{window: testWindow}
	if err := s.grant("a", flowCount{1, 1}); !errors.Is(err, errFlowControl) {
		t.Fatalf("grant with nothing outstanding: %v, want errFlowControl", err)
	}
	if err := s.take(context.Background(), "a", 30, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range []flowCount{{2, 30}, {1, 31}, {-1, 0}} {
		if err := s.grant("a", g); !errors.Is(err, errFlowControl) {
			t.Errorf("grant %+v of {1 30} outstanding: %v, want errFlowControl", g, err)
		}
	}
	if err := s.grant("a", flowCount{1, 30}); err != nil {
		t.Fatal(err)
	}
	if len(s.outstanding) != 0 || s.app != (flowCount{}) {
		t.Fatalf("after every grant: %d protocols outstanding, app %+v; want none", len(s.outstanding), s.app)
	}
}

func TestRecvWindowsGiveBack(t *testing.T) {
	r := &recvWindows{window: testWindow}
	var f recvFlow
	for range 3 {
		if r.take(&f, 20) != taken {
			t.Fatal("a message within the window was not taken")
		}
	}
	if r.take(&f, 50) != breached {
		t.Fatal("a message past the protocol's bytes was taken")
	}
	// Released one by one: nothing is given back until half the window (50 bytes or 2 messages) is released...
	if g, ok := r.release(&f, 20, false); ok {
		t.Fatalf("first release gave back %+v", g)
	}
	if g, ok := r.release(&f, 20, false); !ok || g != (flowCount{2, 40}) {
		t.Fatalf("second release: %+v %v, want {2 40}", g, ok)
	}
	// ... or until the peer says it waits (WindowBlocked): what was released is given back at once,
	if g, ok := r.release(&f, 20, false); ok {
		t.Fatalf("third release gave back %+v", g)
	}
	held := map[*registration]*heldCredits{{}: {protocol: "p", flow: f}}
	for _, h := range held {
		if grants := r.flush(held); len(grants) != 1 || grants[0] != (grantOf{"p", flowCount{1, 20}}) {
			t.Fatalf("flush: %+v, want p's {1 20}", grants)
		}
		if h.flow.outstanding != (flowCount{}) || r.app != (flowCount{}) || r.blocked {
			t.Fatalf("after the flush: %+v outstanding, app %+v, blocked %v", h.flow.outstanding, r.app, r.blocked)
		}
		// ... and with nothing released, the next release is.
		r.take(&h.flow, 5)
		if grants := r.flush(held); len(grants) != 0 || !r.blocked {
			t.Fatalf("flush with nothing released: %+v, blocked %v; want none, blocked", grants, r.blocked)
		}
		if g, ok := r.release(&h.flow, 5, false); !ok || g != (flowCount{1, 5}) || r.blocked {
			t.Fatalf("release while the peer waits: %+v %v, blocked %v; want {1 5}", g, ok, r.blocked)
		}
		f = h.flow
	}
	// A refused message is given back at once.
	r.take(&f, 10)
	r.take(&f, 10)
	if g, ok := r.release(&f, 10, true); !ok || g != (flowCount{1, 10}) {
		t.Fatalf("release now: %+v %v", g, ok)
	}
	// A stopped actor's flow gives back what it holds, once, and takes nothing more.
	if g := r.reclaim(&f); g != (flowCount{1, 10}) {
		t.Fatalf("reclaim: %+v, want {1 10}", g)
	}
	if g := r.reclaim(&f); g != (flowCount{}) {
		t.Fatalf("second reclaim: %+v, want nothing", g)
	}
	if g, ok := r.release(&f, 10, false); ok {
		t.Fatalf("release after the reclaim gave back %+v again", g)
	}
	if r.take(&f, 1) != tooLate {
		t.Fatal("a stopped actor's flow took a message")
	}
	if r.app != (flowCount{}) {
		t.Fatalf("app %+v after the reclaim", r.app)
	}
}

func TestTheNodesOwnProtocolsAreNotWindowed(t *testing.T) {
	if windowed(gossip.Protocol) || windowed(routing.Protocol) || !windowed("chat/1") {
		t.Fatal("windowed: the gossip and discovery protocols only are outside the windows")
	}
	w := windowOf(&Config{InboundPending: 4096, InboundPendingBytes: 4 << 20})
	if w != session.DefaultInboundWindow() || !w.Valid() {
		t.Fatalf("windowOf the defaults = %+v, want session.DefaultInboundWindow %+v", w, session.DefaultInboundWindow())
	}
}

// A huge InboundPending or InboundPendingBytes (no limit, say) gives a window the peers take: its fields went past
// session.MaxWindow, or negative, and every handshake was refused.
func TestTheWindowOfAHugeInboundPendingIsValid(t *testing.T) {
	for _, n := range []int{math.MaxInt, math.MaxInt / 5, 1 << 62, 7} {
		cfg := DefaultConfig()
		cfg.InboundPending, cfg.InboundPendingBytes = n, n
		if w := windowOf(&cfg); !w.Valid() {
			t.Errorf("InboundPending %d: window %+v, want every field in 1..%d", n, w, int64(session.MaxWindow))
		}
	}
	cfg := DefaultConfig()
	cfg.InboundPending, cfg.InboundPendingBytes = 4096, 4<<20
	if w := windowOf(&cfg); w != (session.Window{ProtocolMessages: 2048, ProtocolBytes: 2 << 20, AppMessages: 3072, AppBytes: 3 << 20}) {
		t.Errorf("the default window: %+v", w)
	}
}

// The sweep of idle connections runs at most every minSweepEvery: a timeout of a nanosecond made it re-arm itself
// at once, for good.
func TestTheSweepPeriodHasAFloor(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TransientIdleTimeout, cfg.DiscoveryIdleTimeout = time.Nanosecond, time.Nanosecond
	if every := (&peerManager{n: &Node{cfg: cfg}}).sweepEvery(); every < minSweepEvery {
		t.Fatalf("sweep period %v, want at least %v", every, minSweepEvery)
	}
}
