package actors_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// keptPeer tells whether n holds a connection to id that it keeps.
func keptPeer(n *actors.Node, id [32]byte) bool {
	for _, p := range n.Peers() {
		if p.ID == id {
			return p.Kept
		}
	}
	return false
}

// A peer the application disconnected stays disconnected although discovery would pick it: the bootstrapper
// redialed it as one of its outbound candidates within seconds, so Disconnect did not stop redialing as it says.
// The application's own Connect ends the hold.
func TestDisconnectedPeerIsNotRedialedByDiscovery(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	nw := testkit.NewNetwork(t, 3, testkit.WithBootnode(), testkit.WithLogger(zerolog.New(logs)),
		testkit.WithLogLevel(zerolog.DebugLevel), testkit.WithConfig(func(i int, cfg *actors.Config) {
			cfg.Bootstrap.Interval = 50 * time.Millisecond
			// Node 2 wants more outbound connections than there are peers: its bootstrapper tries every one it does
			// not keep. Node 1 is content with its bootnode, so it does not dial node 2 back.
			cfg.Bootstrap.TargetOutbound = map[int]int{0: 0, 1: 1, 2: 5}[i]
		}))
	node, other := nw.Nodes[2], nw.Nodes[1]
	// Generous: under a loaded host (the whole suite on 2 cores), discovery once took over 10 s here.
	testkit.WaitFor(t, 30*time.Second, func() bool { return keptPeer(node, other.ID()) },
		"discovery to connect node 2 to node 1")
	if err := node.Disconnect(other.ID()); err != nil {
		t.Fatal(err)
	}
	// The bootstrapper, one outbound connection short, tries its candidate again and is refused.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "the application disconnected this peer")
	}, "the bootstrapper's dial to be refused")
	if keptPeer(node, other.ID()) {
		t.Fatal("the node keeps a connection to the peer it disconnected")
	}
	if err := node.Connect(ctxTimeout(t, 10*time.Second), other.Addr(), true); err != nil {
		t.Fatalf("the application's Connect to the peer it disconnected: %v", err)
	}
	if !keptPeer(node, other.ID()) {
		t.Fatal("the application's Connect with keep did not keep the peer")
	}
}

// gatedTransport is the TCP transport whose dials wait for gate to close; entered is signalled as each begins.
type gatedTransport struct {
	session.TCPTransport
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	g.entered <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.TCPTransport.Dial(ctx, addr)
}

// A Disconnect that comes while the dial of a Connect is in progress wins: the connection is closed as it comes
// up, and that Connect fails with ErrPeerGone. It used to come up neither kept nor closed, until it idled out.
func TestDisconnectDuringADialClosesTheConnection(t *testing.T) {
	gated := &gatedTransport{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i == 0 {
			cfg.Transport = gated
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	ctx := ctxTimeout(t, 20*time.Second)
	done := make(chan error, 1)
	go func() { done <- a.Connect(ctx, b.Addr(), true) }()
	<-gated.entered // the dial is in progress
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	close(gated.gate) // the Disconnect is in the peer manager's mailbox before the handshake's outcome
	if err := <-done; !errors.Is(err, actors.ErrPeerGone) {
		t.Fatalf("Connect raced by Disconnect: %v, want ErrPeerGone", err)
	}
	if a.Connected(b.ID()) {
		t.Fatal("the connection came up after Disconnect")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return !b.Connected(a.ID()) }, "b to see the connection closed")
	// The application's next Connect is its own again.
	if err := a.Connect(ctx, b.Addr(), true); err != nil || !keptPeer(a, b.ID()) {
		t.Fatalf("Connect after the race: %v, kept %v", err, keptPeer(a, b.ID()))
	}
}

// A Connect right after a Disconnect gets a connection: the first one still closing when the Connect came, it
// succeeded at once (the closing one counted as connected), and once the goodbye was said no connection was left.
// It now waits for the closing one to end and dials again, for a dial kept or not.
func TestConnectAfterDisconnectConnectsAgain(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	for round, keep := range []bool{false, true, false} {
		ctx := ctxTimeout(t, 20*time.Second)
		if err := b.Connect(ctx, a.Addr(), keep); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		if err := b.Disconnect(a.ID()); err != nil {
			t.Fatal(err)
		}
		if err := b.Connect(ctx, a.Addr(), keep); err != nil {
			t.Fatalf("round %d (keep %v): Connect after Disconnect: %v", round, keep, err)
		}
		var conn *actors.PeerInfo
		for _, p := range b.Peers() {
			if p.ID == a.ID() {
				conn = &p
			}
		}
		if conn == nil || conn.ConnectedAt.Before(before) {
			t.Fatalf("round %d (keep %v): Connect after Disconnect returned with %+v, want a connection made after the Disconnect",
				round, keep, conn)
		}
	}
}

// A Send or Request right after a Disconnect, while the connection is still saying goodbye, dials the peer again as
// Connect does: they took the closing connection and failed with ErrPeerGone. The links' 150 ms latency keeps
// the goodbye in flight long enough to send on it.
func TestSendWhileTheConnectionClosesDialsAgain(t *testing.T) {
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 150 * time.Millisecond}})
	got := make(chan *actors.Inbound, 4)
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.Transport = mn.NewTransport()
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, a, "inbox/1", collector(got))
	register(t, a, "echo/1", echo())
	for round, request := range []bool{false, true} {
		ctx := ctxTimeout(t, 20*time.Second)
		if err := b.Connect(ctx, a.Addr(), false); err != nil {
			t.Fatal(err)
		}
		if err := b.Disconnect(a.ID()); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, func() bool { return b.ConnClosing(a.ID()) },
			"round %d: the connection to start closing", round)
		if request {
			reply, err := b.Request(ctx, a.ID(), "echo/1", wrapperspb.String("abc"))
			if err != nil {
				t.Fatalf("Request while the connection closes: %v", err)
			}
			if s := reply.(*wrapperspb.StringValue).GetValue(); s != "cba" {
				t.Fatalf("Request while the connection closes: reply %q, want %q", s, "cba")
			}
			continue
		}
		if err := b.Send(ctx, a.ID(), "inbox/1", wrapperspb.String("after")); err != nil {
			t.Fatalf("Send while the connection closes: %v", err)
		}
		select {
		case in := <-got:
			if s := in.Payload.(*wrapperspb.StringValue).GetValue(); s != "after" {
				t.Fatalf("received %q, want %q", s, "after")
			}
		case <-ctx.Done():
			t.Fatal("the message sent while the connection closed never arrived")
		}
	}
}

// A Send or Request whose context ends while it waits for the peer's closing connection to end dials nothing once
// the connection has closed: its caller has gone (with its context's error). Such dials waited among the peer
// manager's afterClose dials and were made all the same, a connection for no one. The scripted peer never closes
// its side, so the node's connection closes only after its linger (closeFlushTimeout, 1 s).
func TestASendWhoseCallerGaveUpWaitingForAClosingConnectionDialsNothing(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, q := nw.Nodes[0], nw.Nodes[1]
	peer, taken := scriptedPeer(t, newIdentity(t), func(_ int32, sc *session.Conn) { hold(sc) })
	ev := watchEvents(t, a)
	if err := a.Connect(ctxTimeout(t, 5*time.Second), peer, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Disconnect(peer.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.ConnClosing(peer.ID) }, "the connection to start closing")
	if err := a.Send(ctxTimeout(t, 200*time.Millisecond), peer.ID, "inbox/1", wrapperspb.String("m")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a Send whose context ended while the connection closed: %v, want its context's error", err)
	}
	if _, err := a.Request(ctxTimeout(t, 200*time.Millisecond), peer.ID, "echo/1", wrapperspb.String("m")); !errors.Is(err, actors.ErrRequestTimeout) {
		t.Fatalf("a Request whose context ended while the connection closed: %v, want ErrRequestTimeout", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return ev.disconnects(peer.ID) == 1 }, "the connection closed")
	// The peer manager dialed for the requests that waited as the connection closed (afterClose) before it took
	// this dial: once it is answered, any dial of theirs is in progress or done.
	if err := a.Connect(ctxTimeout(t, 5*time.Second), q.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if pending, connected := a.Stats().PendingHandshakes, a.Connected(peer.ID); pending != 0 || connected || taken.Load() != 1 {
		t.Fatalf("after the connection closed: %d handshakes in progress, connected %v, the peer took %d connections; "+
			"want none dialed for callers that gave up", pending, connected, taken.Load())
	}
}
