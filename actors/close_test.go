package actors_test

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A node redialing many unreachable peers in a tight loop while connected to another must still close promptly:
// redial and dial messages queued behind the stop must not reach a stopped peer manager's state.
func TestCloseWhileRedialingManyPeers(t *testing.T) {
	for iter := 0; iter < 10; iter++ {
		var dead []session.PeerAddr
		for i := 0; i < 20; i++ {
			id, err := session.GenerateIdentity()
			if err != nil {
				t.Fatal(err)
			}
			dead = append(dead, session.PeerAddr{ID: id.NodeID(), Addr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
		}
		nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
			if i == 0 {
				cfg.Peers = dead
				cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 100*time.Microsecond, time.Millisecond, 0
			}
		}))
		nw.Connect(0, 1)
		closed := make(chan error, 1)
		go func() { closed <- nw.Nodes[0].Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close hung", iter)
		}
		nw.Close()
	}
}

// A node that closes a connection while its peer is still sending tells the peer why. A TCP socket closed with
// unread data resets the connection, and the reset drops what was not yet sent, the goodbye included: the peer
// would record a read error instead of the reason.
func TestDisconnectWhileThePeerSendsDeliversTheReason(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	events := watchEvents(t, b)
	ctx := ctxTimeout(t, 20*time.Second)
	if err := b.Connect(ctx, a.Addr(), false); err != nil {
		t.Fatal(err)
	}
	stop, sent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		payload := wrapperspb.Bytes(make([]byte, 8<<10))
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = b.Send(ctx, a.ID(), "nobody/1", payload) // fails once a closed the connection; b keeps trying
		}
	}()
	defer func() { close(stop); <-sent }()
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return a.Stats().MessagesIn[actors.UnknownProtocol] > 20 }); err != nil {
		t.Fatal("a did not receive b's stream")
	}
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return events.disconnects(a.ID()) > 0 }); err != nil {
		t.Fatal("b never saw the connection close")
	}
	if !events.sawDisconnect(a.ID(), messages.DisconnectReason_DISCONNECT_REASON_REQUESTED) {
		t.Fatalf("b recorded the close without a's reason REQUESTED: %v", events.events)
	}
}

// A node closing right after dialing tells the peer why even when the connection has not reached its peer
// manager yet (the dialer's handshake ends just after the peer's, and the connection then waits in the mailbox):
// the peer must record SHUTDOWN, not a reset or an EOF. The close is timed, as an operator's Ctrl-C would be, by
// the peer seeing the connection.
func TestNodeClosingJustAfterDialingSaysGoodbye(t *testing.T) {
	a := testkit.NewNetwork(t, 1).Nodes[0]
	events := watchEvents(t, a)
	ctx := ctxTimeout(t, time.Minute)
	for i := 0; i < 30; i++ {
		nodes, err := testkit.StartNodes(ctx, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
			cfg.Peers = []session.PeerAddr{a.Addr()}
		}))
		if err != nil {
			t.Fatal(err)
		}
		b := nodes[0]
		if err := testkit.Poll(ctx, 10*time.Second, func() bool { return a.Connected(b.ID()) }); err != nil {
			_ = b.Close()
			t.Fatalf("iteration %d: a never saw b's connection", i)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := testkit.Poll(ctx, 10*time.Second, func() bool { return events.disconnects(b.ID()) > 0 }); err != nil {
			t.Fatalf("iteration %d: a never saw b's connection close", i)
		}
		if !events.sawDisconnect(b.ID(), messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN) {
			t.Fatalf("iteration %d: a recorded b's close without the reason SHUTDOWN: %v", i, events.events)
		}
	}
}

// countingTransport is TCP whose listeners count the connections they accept and the ones closed since.
type countingTransport struct {
	session.TCPTransport
	accepted, closed atomic.Int64
}

type countingListener struct {
	net.Listener
	t *countingTransport
}

type countedConn struct {
	net.Conn
	t    *countingTransport
	once sync.Once
}

func (t *countingTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.TCPTransport.Listen(addr)
	if err != nil {
		return nil, err
	}
	return countingListener{Listener: ln, t: t}, nil
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.t.accepted.Add(1)
	return &countedConn{Conn: c, t: l.t}, nil
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.t.closed.Add(1) })
	return c.Conn.Close()
}

// Every connection the node accepted is closed once Close returns, also under a stream of inbound dials: the ones
// still on their way to the peer manager (in its mailbox as it stops, or handed over after it stopped) used to be
// dropped unclosed, in 13 Close calls of 20 (0-63 sockets each), open until the collector found them.
func TestCloseUnderInboundDialsClosesEveryAcceptedConnection(t *testing.T) {
	for iter := range 8 {
		tr := &countingTransport{}
		n := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
			cfg.DisableDiscovery = true
			cfg.Transport = tr
		})).Nodes[0]
		addr := n.Addr().Addr
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var held []net.Conn
				defer func() {
					for _, c := range held {
						_ = c.Close()
					}
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
						held = append(held, c)
					}
				}
			}()
		}
		testkit.WaitFor(t, 10*time.Second, func() bool { return tr.accepted.Load() >= 100 }, "100 connections accepted")
		_ = n.Close()
		close(stop)
		wg.Wait()
		if open := tr.accepted.Load() - tr.closed.Load(); open != 0 {
			t.Fatalf("iteration %d: %d of the %d connections accepted still open after Close", iter, open, tr.accepted.Load())
		}
	}
}

// Gossip calls under way when Close runs fail with ErrClosed, as the direct API's do: they failed with
// gossip.ErrRelayStopped, which the docs give for a relay that failed too often, so that an application could not
// tell a shutdown from a failure.
func TestGossipCallsRacingCloseFailWithErrClosed(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 5*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ctx := ctxTimeout(t, 5*time.Second)
				var err error
				switch i % 3 {
				case 0:
					_, err = a.Publish(ctx, "t", wrapperspb.String(fmt.Sprint(w, " ", i)))
				case 1:
					_, err = a.GossipStats(ctx)
				case 2:
					_, err = a.Subscribe(ctx, "u", func(*gossip.Delivery) {})
				}
				calls.Add(1)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return calls.Load() >= 200 }, "gossip calls under way")
	_ = a.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, actors.ErrClosed) {
			t.Errorf("a gossip call under way at Close: %v, want ErrClosed", err)
		}
	}
}
