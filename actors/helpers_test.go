package actors_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// rawPeer handshakes with n as a bare session.Conn over TCP, so that a test can answer as a hostile peer would.
// The connection is closed when the test ends.
func rawPeer(t testing.TB, n *actors.Node) (*session.Conn, session.NodeID) {
	t.Helper()
	return windowPeer(t, n, session.TCPTransport{}.Dial, session.Window{})
}

// windowPeer is rawPeer dialed over dial, advertising window (the zero Window: the default): a test plays the
// receiver whose window n's sends keep within, and gives back (WindowUpdate) what it chooses.
func windowPeer(t testing.TB, n *actors.Node, dial func(ctx context.Context, addr string) (net.Conn, error), window session.Window) (*session.Conn, session.NodeID) {
	t.Helper()
	peer, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dial(ctxTimeout(t, 5*time.Second), n.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := session.Handshake(context.Background(), raw, session.HandshakeConfig{
		Identity: peer, NetworkID: "actormesh", InboundWindow: window,
	}, true, n.ID())
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	testkit.WaitFor(t, 5*time.Second, func() bool { return n.Connected(peer.NodeID()) }, "raw peer connected")
	return sc, peer.NodeID()
}

// collector is a protocol actor that forwards every inbound message to a channel.
func collector(ch chan<- *actors.Inbound) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			ch <- in
		}
	})
}

// echo is a protocol actor that answers a StringValue request with the string upper-cased... reversed, to prove
// the reply is computed remotely.
func echo() *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		in, ok := ctx.Message().(*actors.Inbound)
		if !ok || !in.IsRequest() {
			return
		}
		s := in.Payload.(*wrapperspb.StringValue).GetValue()
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		_ = in.Reply(wrapperspb.String(string(r)))
	})
}

func register(t testing.TB, n *actors.Node, protocol string, props *actor.Props) {
	t.Helper()
	if _, err := n.Register(protocol, props); err != nil {
		t.Fatalf("register %s: %v", protocol, err)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventLog records a node's peer events.
type eventLog struct {
	mu     sync.Mutex
	events []proto.Message
}

func watchEvents(t testing.TB, n *actors.Node) *eventLog {
	t.Helper()
	l := &eventLog{}
	unsub, err := n.SubscribeEvents(func(m proto.Message) {
		l.mu.Lock()
		l.events = append(l.events, m)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return l
}

// disconnectsFrom returns the disconnects from peer recorded, oldest first.
func (l *eventLog) disconnectsFrom(peer session.NodeID) []*messages.PeerDisconnected {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*messages.PeerDisconnected
	for _, e := range l.events {
		if d, ok := e.(*messages.PeerDisconnected); ok && string(d.PeerId) == string(peer[:]) {
			out = append(out, d)
		}
	}
	return out
}

// sawDisconnect tells whether a disconnect from peer with the given reason was recorded.
func (l *eventLog) sawDisconnect(peer session.NodeID, reason messages.DisconnectReason) bool {
	return slices.ContainsFunc(l.disconnectsFrom(peer), func(d *messages.PeerDisconnected) bool { return d.Reason == reason })
}

// disconnects counts the disconnects from peer recorded.
func (l *eventLog) disconnects(peer session.NodeID) int { return len(l.disconnectsFrom(peer)) }

// connects counts the connections to peer recorded.
func (l *eventLog) connects(peer session.NodeID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if c, ok := e.(*messages.PeerConnected); ok && string(c.PeerId) == string(peer[:]) {
			n++
		}
	}
	return n
}

// unstartedNode returns a node made but not started (discovery off), closed at the end of the test.
func unstartedNode(t testing.TB) *actors.Node {
	t.Helper()
	cfg := actors.DefaultConfig()
	cfg.DisableDiscovery = true
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// protocolStops returns the protocols whose actor n stopped for good, from its ProtocolStopped events (the first
// one; the channel holds one), until the test ends.
func protocolStops(t testing.TB, n *actors.Node) <-chan string {
	t.Helper()
	stopped := make(chan string, 1)
	unsubscribe, err := n.SubscribeEvents(func(m proto.Message) {
		if e, ok := m.(*messages.ProtocolStopped); ok {
			select {
			case stopped <- e.GetProtocol():
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsubscribe)
	return stopped
}
