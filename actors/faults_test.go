package actors_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// expectClosedByPeer reads from c until the other end closes it, failing after timeout.
func expectClosedByPeer(t *testing.T, c net.Conn, timeout time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the node did not close the connection within %v", timeout)
	}
}

// assertServes checks that node b still answers requests from a fresh node.
func assertServes(t *testing.T, b *actors.Node) {
	t.Helper()
	c := testkit.NewNetwork(t, 1).Nodes[0]
	if err := c.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), false); err != nil {
		t.Fatalf("node stopped accepting peers: %v", err)
	}
	reply, err := c.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("ok"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "ko" {
		t.Fatalf("node stopped serving other peers: %v %v", reply, err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.HandshakeTimeout = 300 * time.Millisecond
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "echo/1", echo())

	t.Run("wrong expected id", func(t *testing.T) {
		other, _ := session.GenerateIdentity()
		err := a.Connect(ctxTimeout(t, 5*time.Second), session.PeerAddr{ID: other.NodeID(), Addr: b.Addr().Addr}, false)
		if !errors.Is(err, session.ErrWrongPeer) {
			t.Fatalf("got %v, want ErrWrongPeer", err)
		}
		if a.Connected(b.ID()) || a.Connected(other.NodeID()) {
			t.Fatal("a connection survived a failed identity check")
		}
	})
	t.Run("other network", func(t *testing.T) {
		c := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.NetworkID = "elsewhere" })).Nodes[0]
		err := c.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), false)
		if !errors.Is(err, session.ErrNetworkMismatch) {
			t.Fatalf("got %v, want ErrNetworkMismatch", err)
		}
	})
	t.Run("garbage bytes", func(t *testing.T) {
		raw, err := net.Dial("tcp", b.Addr().Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_, _ = raw.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 50))
		expectClosedByPeer(t, raw, 5*time.Second)
	})
	t.Run("stalls mid-handshake", func(t *testing.T) {
		raw, err := net.Dial("tcp", b.Addr().Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_, _ = raw.Write([]byte{0, 32}) // announces a first handshake message that never comes
		expectClosedByPeer(t, raw, 5*time.Second)
	})
	assertServes(t, b)
}

// The error reply to a request for an unknown protocol repeats the protocol's name, which the peer chooses: clipped,
// it stays far under MaxMessageSize whatever the name. It used to repeat it twice, once %q-quoted (up to 4 bytes a
// byte), and a 300 KB name made a reply the writer refused, which then closed the connection with WRITE_ERROR.
func TestErrorReplyToAHugeProtocolNameIsClipped(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	events := watchEvents(t, a)
	sc, peer := rawPeer(t, a)
	payload, _ := anypb.New(wrapperspb.String("hi"))
	req, _ := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: strings.Repeat("\x01", 300_000), Kind: messages.DirectKind_DIRECT_KIND_REQUEST, RequestId: 7, Payload: payload,
	}}})
	ping, _ := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: 9}}})
	if err := sc.WriteMessages(req, ping); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var reply *messages.Direct
	for { // the error reply, then the pong: the connection is still up
		b, err := sc.ReadMessage()
		if err != nil {
			t.Fatalf("no error reply and pong: %v (disconnects: %v)", err, events.disconnectsFrom(peer))
		}
		env := &messages.Envelope{}
		if err := proto.Unmarshal(b, env); err != nil {
			t.Fatal(err)
		}
		if d := env.GetDirect(); d != nil {
			reply = d
		}
		if env.GetWindowUpdate() != nil { // a peer could make the node send back about what it sends
			t.Fatalf("the request's window given back with its %d-byte protocol name", len(env.GetWindowUpdate().GetProtocol()))
		}
		if env.GetPong().GetNonce() == 9 {
			break
		}
	}
	if reply.GetKind() != messages.DirectKind_DIRECT_KIND_ERROR || reply.GetRequestId() != 7 ||
		reply.GetError().GetCode() != messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL {
		t.Fatalf("reply %v, want an UNKNOWN_PROTOCOL error to request 7", reply)
	}
	if n, m := len(reply.GetProtocol()), len(reply.GetError().GetMessage()); n > 256 || m > 256 {
		t.Fatalf("error reply with a %d-byte protocol name and a %d-byte message, want at most 256 each", n, m)
	}
	if !a.Connected(peer) || events.disconnects(peer) > 0 {
		t.Fatalf("the connection closed: %v", events.disconnectsFrom(peer))
	}
}

// A peer address must name the peer: with a zero id the handshake accepts whoever answers, and the dial, recorded
// under the zero id but reported under the peer's, used to leave Connect waiting until its context ended and an
// outbound slot taken for good.
func TestZeroPeerIDIsRefused(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.MaxOutboundPeers = 1
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	err := a.Connect(ctxTimeout(t, 5*time.Second), session.PeerAddr{Addr: b.Addr().Addr}, false)
	if !errors.Is(err, session.ErrBadPeerAddr) {
		t.Fatalf("Connect to a zero id: %v, want ErrBadPeerAddr", err)
	}
	if err := a.AddAddress(session.NodeID{}, b.Addr().Addr); !errors.Is(err, session.ErrBadPeerAddr) {
		t.Fatalf("AddAddress of a zero id: %v, want ErrBadPeerAddr", err)
	}
	// An address that is no host:port is refused too: it took the peer's place in the address book, and every
	// dial then failed with an error matching nothing.
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:0", ":99999", "[::1"} {
		if err := a.AddAddress(b.ID(), bad); !errors.Is(err, session.ErrBadPeerAddr) {
			t.Fatalf("AddAddress(%q): %v, want ErrBadPeerAddr", bad, err)
		}
		if err := a.Connect(ctxTimeout(t, 5*time.Second), session.PeerAddr{ID: b.ID(), Addr: bad}, false); !errors.Is(err, session.ErrBadPeerAddr) {
			t.Fatalf("Connect to %q: %v, want ErrBadPeerAddr", bad, err)
		}
	}
	cfg := actors.DefaultConfig()
	cfg.Peers = []session.PeerAddr{{Addr: b.Addr().Addr}}
	if _, err := actors.NewNode(cfg); !errors.Is(err, actors.ErrInvalidConfig) || !errors.Is(err, session.ErrBadPeerAddr) {
		t.Fatalf("NewNode with a zero id in Peers: %v, want ErrInvalidConfig and ErrBadPeerAddr", err)
	}
	// No slot was taken: the one outbound connection a may make still goes through.
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), false); err != nil {
		t.Fatal(err)
	}
}

func TestKilledConnectionIsRedialed(t *testing.T) {
	ft := testkit.NewFaultyTransport()
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.Transport = ft
			cfg.RedialBase = 20 * time.Millisecond
			cfg.RedialMax = 200 * time.Millisecond
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	got := make(chan *actors.Inbound, 16)
	register(t, b, "sink/1", collector(got))
	nw.Connect(0, 1)
	events := watchEvents(t, a)

	for round := 0; round < 3; round++ {
		if ft.KillAll() == 0 {
			t.Fatal("no connection to kill")
		}
		testkit.WaitFor(t, 5*time.Second, func() bool { return events.disconnects(b.ID()) > 0 }, "a sees the disconnect")
		testkit.WaitFor(t, 10*time.Second, func() bool { return a.Connected(b.ID()) && b.Connected(a.ID()) }, "redial after kill %d", round)
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "sink/1", wrapperspb.Int32(int32(round))); err != nil {
			t.Fatalf("send after redial: %v", err)
		}
		select {
		case in := <-got:
			if in.Payload.(*wrapperspb.Int32Value).GetValue() != int32(round) {
				t.Fatalf("wrong message after redial")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message after redial")
		}
		events.mu.Lock()
		events.events = nil
		events.mu.Unlock()
	}
}

func TestRedialBackoffStaysUnderCap(t *testing.T) {
	ft := testkit.NewFaultyTransport()
	const capDelay = 80 * time.Millisecond
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.Transport = ft
			cfg.RedialBase = 5 * time.Millisecond
			cfg.RedialMax = capDelay
			cfg.RedialAttempts = 0 // never give up
		}
	}))
	b := nw.Nodes[1]
	nw.Connect(0, 1)

	var mu sync.Mutex
	var times []time.Time
	refused := errors.New("refused by test")
	ft.FailDials(func(string) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return refused
	})
	_ = b.Close()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(times) >= 12
	}, "a keeps redialing a wanted peer")
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(times); i++ {
		// Full jitter keeps every delay below the cap; allow for scheduling and the failed dial itself.
		if gap := times[i].Sub(times[i-1]); gap > capDelay+150*time.Millisecond {
			t.Fatalf("redial gap %d is %v, beyond the %v cap", i, gap, capDelay)
		}
	}
}

func TestSimultaneousDialsEndInOneConnection(t *testing.T) {
	for round := 0; round < 5; round++ {
		nw := testkit.NewNetwork(t, 2)
		a, b := nw.Nodes[0], nw.Nodes[1]
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); errs[0] = a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), true) }()
		go func() { defer wg.Done(); errs[1] = b.Connect(ctxTimeout(t, 5*time.Second), a.Addr(), true) }()
		wg.Wait()
		testkit.WaitFor(t, 5*time.Second, func() bool {
			pa, pb := a.Peers(), b.Peers()
			return len(pa) == 1 && len(pb) == 1 && pa[0].Outbound != pb[0].Outbound && pa[0].RemoteAddr != "" &&
				pa[0].RemoteAddr == localOf(pb[0])
		}, "exactly one shared connection (round %d, connect errors %v)", round, errs)
		nw.Close()
	}
}

func localOf(p actors.PeerInfo) string { return p.LocalAddr }

// TestSlowReaderDoesNotSlowOtherPeers: a peer that never reads holds at most half of its send queue of the
// application's messages (Sends then wait and fail with ErrOverloaded, nothing sent), never slows the node's other
// peers, and is disconnected as SLOW_PEER when a write to it stays blocked for WriteTimeout. (Before stop 53 the
// application's sends filled the queue whole and the overflow disconnected the peer; a peer reading all along was
// disconnected so too, by a node sending within its window or replying to its concurrent requests.)
func TestSlowReaderDoesNotSlowOtherPeers(t *testing.T) {
	const queueBytes = 24 << 20
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.SendQueueBytes = queueBytes
		cfg.WriteTimeout = 5 * time.Second
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "echo/1", echo())
	nw.Connect(0, 1)
	events := watchEvents(t, a)

	// A peer that completes the handshake and then never reads, with a small socket buffer.
	stuck, _ := stuckPeer(t, a)
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Connected(stuck.NodeID()) }, "stuck peer connected")

	// Sends to the stuck peer until one fails: once half the queue is taken, they wait and fail with ErrOverloaded.
	payload := wrapperspb.Bytes(make([]byte, 16<<10))
	var sendErr error
	sent := 0
	for ; sent < 4096 && sendErr == nil; sent++ {
		sendErr = a.Send(ctxTimeout(t, 300*time.Millisecond), stuck.NodeID(), "any/1", payload)
	}
	if !errors.Is(sendErr, actors.ErrOverloaded) {
		t.Fatalf("send %d to the stuck peer: %v, want ErrOverloaded", sent, sendErr)
	}
	var queued int
	for _, p := range a.Peers() {
		if p.ID == stuck.NodeID() {
			queued = p.QueuedBytes
		}
	}
	if queued == 0 || queued > queueBytes/2+64<<10 {
		t.Fatalf("the stuck peer's queue holds %d bytes: want some, at most half of %d", queued, queueBytes)
	}
	for i := 0; i < 200; i++ {
		reply, err := a.Request(ctxTimeout(t, 2*time.Second), b.ID(), "echo/1", wrapperspb.String("ab"))
		if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "ba" {
			t.Fatalf("request %d to the healthy peer while another is stuck: %v", i, err)
		}
	}
	testkit.WaitFor(t, 15*time.Second, func() bool {
		return events.sawDisconnect(stuck.NodeID(), messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER)
	}, "the stuck peer disconnected as SLOW_PEER")
	if _, err := a.Request(ctxTimeout(t, 2*time.Second), b.ID(), "echo/1", wrapperspb.String("ab")); err != nil {
		t.Fatalf("healthy peer affected by the disconnect: %v", err)
	}
}

// A peer that takes gossip and never reads is disconnected as SLOW_PEER once its send queue is full, not left
// connected with every later RPC to it failing: application sends wait for room (ErrOverloaded), but gossip and
// control are queued whole, and a push past the queue's limit ends the connection (the write deadline, a minute
// here, would take far longer).
func TestAPeerWhoseSendQueueGossipFillsIsDisconnectedAsSlow(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		fastGossip(cfg)
		cfg.SendQueueBytes = 1 << 20
		cfg.WriteTimeout = time.Minute
	})).Nodes[0]
	if _, err := a.Subscribe(ctxTimeout(t, 5*time.Second), "t", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	events := watchEvents(t, a)

	// A peer that completes the handshake, subscribes to "t" and then never reads, with a small socket buffer.
	stuck, sc := stuckPeer(t, a)
	hello, err := anypb.New(&messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "t", Subscribe: true}}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: gossip.Protocol, Kind: messages.DirectKind_DIRECT_KIND_ONEWAY, Payload: hello,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(env); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 5*time.Second), "t", 1); err != nil {
		t.Fatalf("the stuck peer's subscription: %v", err)
	}

	// 64 KiB messages until a disconnects the peer: its 1 MiB queue, and the socket's buffers, fill up.
	ctx := ctxTimeout(t, 10*time.Second)
	data := make([]byte, 64<<10)
	published := 0
	for !events.sawDisconnect(stuck.NodeID(), messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER) {
		if ctx.Err() != nil {
			t.Fatalf("the stuck peer not disconnected as SLOW_PEER after %d messages of 64 KiB (connected %v, disconnects %d)",
				published, a.Connected(stuck.NodeID()), events.disconnects(stuck.NodeID()))
		}
		binary.BigEndian.PutUint64(data, uint64(published)) // each message new (ids hash the payload)
		if _, err := a.Publish(ctx, "t", wrapperspb.Bytes(data)); err == nil {
			published++
		} else if !errors.Is(err, gossip.ErrNoPeers) && ctx.Err() == nil {
			t.Fatalf("publish %d: %v", published, err)
		}
	}
}

// stuckPeer handshakes with a over TCP as a fresh identity with a small socket buffer and a window far over a's
// send queue (flow control would hold a's sends back before the queue filled up), for a test to stop reading.
// The connection closes when the test ends.
func stuckPeer(t *testing.T, a *actors.Node) (*session.Identity, *session.Conn) {
	t.Helper()
	stuck, _ := session.GenerateIdentity()
	raw, err := net.Dial("tcp", a.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	sc, err := session.Handshake(context.Background(), raw, session.HandshakeConfig{
		Identity: stuck, NetworkID: "actormesh",
		InboundWindow: session.Window{ProtocolMessages: 1 << 20, ProtocolBytes: 1 << 40, AppMessages: 1 << 20, AppBytes: 1 << 40},
	}, true, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return stuck, sc
}
