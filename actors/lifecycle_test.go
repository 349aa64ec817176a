package actors

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// allCollected runs the collector and tells whether every pointer's object has been freed.
func allCollected[T any](ptrs []weak.Pointer[T]) bool {
	runtime.GC()
	for _, p := range ptrs {
		if p.Value() != nil {
			return false
		}
	}
	return true
}

// startTestNode starts a node on 127.0.0.1 with the default config, quiet, adjusted by configure; it is closed
// when the test ends.
func startTestNode(t *testing.T, ctx context.Context, configure func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = zerolog.Nop()
	configure(&cfg)
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

// TestClosedConnectionsAreReleased checks that a node keeps nothing of a connection once it is closed: the
// collector frees it (session, ciphers, buffers, queues). protoactor's children set used to keep stopped
// connection actors, and so their connections, reachable.
func TestClosedConnectionsAreReleased(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node { return startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true }) }
	a := start()
	var peers []*Node
	var conns []weak.Pointer[peerConn]
	for range 3 {
		b := start()
		if err := a.Connect(ctx, b.Addr(), true); err != nil {
			t.Fatal(err)
		}
		pc := a.peers.get(b.ID())
		if pc == nil {
			t.Fatal("no connection right after Connect")
		}
		peers = append(peers, b)
		conns = append(conns, weak.Make(pc))
	}
	for _, b := range peers {
		if err := a.Disconnect(b.ID()); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, ctx, func() bool { return !a.Connected(b.ID()) && !b.Connected(a.ID()) }, "a connection stayed up")
	}
	pollUntil(t, ctx, func() bool { return allCollected(conns) }, "a closed connection is still reachable")
}

// TestForgetStoppedChildrenReleasesThem checks the middleware on its own: a parent's stopped children are freed.
func TestForgetStoppedChildrenReleasesThem(t *testing.T) {
	type child struct{ buf []byte }
	sys := NewActorSystem(zerolog.Nop())
	defer sys.Shutdown()
	var kids []weak.Pointer[child]
	terminated := make(chan struct{}, 8)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case string:
			var pids []*actor.PID
			for range 5 {
				pids = append(pids, c.Spawn(actor.PropsFromProducer(func() actor.Actor {
					k := &child{buf: make([]byte, 1<<10)}
					kids = append(kids, weak.Make(k)) // producers run in the parent's Receive: no race
					return actor.ReceiveFunc(func(actor.Context) { _ = k.buf })
				})))
			}
			for _, pid := range pids {
				c.Stop(pid)
			}
		case *actor.Terminated:
			terminated <- struct{}{}
		}
	}, actor.WithReceiverMiddleware(forgetStoppedChildren)))
	defer sys.Root.Stop(parent)
	sys.Root.Send(parent, "spawn")
	for range 5 {
		select {
		case <-terminated:
		case <-time.After(5 * time.Second):
			t.Fatal("a child never stopped")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pollUntil(t, ctx, func() bool { return allCollected(kids) }, "a stopped child is still reachable")
}

// TestIdleSweepSparesAConnectionAwaitingAReply checks that a transient connection is not idle while one of the
// node's requests on it waits for its reply, however short the idle timeouts: discovery's connections close 500 ms
// after their last message by default, and a slow peer's reply may take longer than that.
func TestIdleSweepSparesAConnectionAwaitingAReply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func(idle time.Duration) *Node {
		return startTestNode(t, ctx, func(cfg *Config) {
			cfg.DisableDiscovery = true
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout = idle, idle
		})
	}
	// The sweep of b (the responder) closes inbound transient connections after TransientIdleTimeout, whatever it
	// owes on them: only a's timeouts are short.
	a, b := start(50*time.Millisecond), start(time.Minute)
	const delay = 500 * time.Millisecond // ten idle timeouts
	if _, err := b.Register("slow", actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*Inbound); ok {
			time.AfterFunc(delay, func() { _ = in.Reply(wrapperspb.String("late")) })
		}
	})); err != nil {
		t.Fatal(err)
	}
	a.AddAddress(b.ID(), b.Addr().Addr)
	for _, app := range []bool{false, true} { // discovery's request, then the application's
		reply, err := a.request(ctx, b.ID(), "slow", wrapperspb.String("hi"), app)
		if err != nil {
			t.Fatalf("request (application %v): %v", app, err)
		}
		if s, ok := reply.(*wrapperspb.StringValue); !ok || s.GetValue() != "late" {
			t.Fatalf("reply %v", reply)
		}
		pollUntil(t, ctx, func() bool { return !a.Connected(b.ID()) }, "the idle transient connection was never closed")
	}
}

// A queued message over MaxMessageSize (every path that queues checks the size, so only a bug queues one) costs
// that message, logged and counted in QueueDropped, not the connection: the writer used to take the refusal of the
// whole batch for a socket failure, closing with WRITE_ERROR and losing the batch uncounted.
func TestOversizedQueuedMessageCostsOnlyItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node { return startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true }) }
	a, b := start(), start()
	got := make(chan struct{}, 1)
	if _, err := b.Register("sink/1", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*Inbound); ok {
			got <- struct{}{}
		}
	})); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatal(err)
	}
	pc := a.peers.get(b.ID())
	if pc == nil {
		t.Fatal("no connection right after Connect")
	}
	if err := pc.q.push(make([]byte, a.cfg.MaxMessageSize+1), false); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, b.ID(), "sink/1", wrapperspb.String("after it")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the message queued after an oversized one was not delivered")
	}
	if !a.Connected(b.ID()) {
		t.Fatal("the connection closed")
	}
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, ctx, func() bool { return a.Stats().QueueDropped == 1 }, "the oversized message is not counted as dropped")
}

// holdSecondWrite is a connection whose second Write (a handshake initiator's message 3) waits until release is
// closed; held is closed once it waits, i.e. once the responder has answered message 1 and waits for message 3.
type holdSecondWrite struct {
	net.Conn
	writes  int
	held    chan struct{}
	release chan struct{}
}

func (c *holdSecondWrite) Write(b []byte) (int, error) {
	if c.writes++; c.writes == 2 {
		close(c.held)
		<-c.release
	}
	return c.Conn.Write(b)
}

// A panic restarts the peer manager, and protoactor replaces the instance without delivering Stopping to it: the
// old instance must still end its handshakes, close the connections it handshook and fail its waiters, as when it
// stops. It used to do none of it: a handshake that ended after the restart reported to the new instance, which
// did not know the connection and dropped it, neither registered nor closed.
func TestPeerManagerRestartClosesTheHandshakesInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node { return startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true }) }
	b := start()
	raw, err := net.Dial("tcp", b.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	conn := &holdSecondWrite{Conn: raw, held: make(chan struct{}), release: make(chan struct{})}
	peer, _ := session.GenerateIdentity()
	type result struct {
		sc  *session.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		sc, err := session.Handshake(ctx, conn, session.HandshakeConfig{Identity: peer, NetworkID: "actormesh"}, true, b.ID())
		done <- result{sc, err}
	}()
	select {
	case <-conn.held: // b's handshake goroutine waits for message 3
	case <-ctx.Done():
		t.Fatal("b did not answer the handshake")
	}
	b.accepted.add(nil)                            // recorded as accepted, so that the peer manager takes it
	b.system.Root.Send(b.peerMgr, &acceptedConn{}) // a nil connection panics the peer manager (RemoteAddr)
	pollUntil(t, ctx, func() bool { return b.Stats().ActorRestarts >= 1 }, "b's peer manager did not restart")
	close(conn.release)
	r := <-done
	if r.err == nil { // b closed it or registered it: it must not leave it open and unowned
		_ = r.sc.SetReadDeadline(time.Now().Add(4 * time.Second))
		var rerr error
		for rerr == nil {
			_, rerr = r.sc.ReadMessage()
		}
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() && !b.Connected(peer.NodeID()) {
			t.Fatal("b completed a handshake across its peer manager's restart, then neither registered nor closed the connection")
		}
	}
	// The restarted peer manager serves: a new peer connects.
	a := start()
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
}

// An event subscriber's panic is logged, not raised in the peer manager that publishes the event: it used to
// restart the peer manager, dropping every connection.
func TestPanickingEventSubscriberLeavesThePeerManagerAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node { return startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true }) }
	a, b := start(), start()
	panicked := make(chan struct{})
	unsub, err := b.SubscribeEvents(func(m proto.Message) {
		if _, ok := m.(*messages.PeerConnected); ok {
			close(panicked)
			panic("subscriber bug")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	if _, err := b.Register("echo", actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*Inbound); ok {
			_ = in.Reply(in.Payload)
		}
	})); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatal(err)
	}
	<-panicked
	if _, err := a.Request(ctx, b.ID(), "echo", wrapperspb.String("hi")); err != nil {
		t.Fatalf("request after the subscriber panicked: %v", err)
	}
	if n := b.Stats().ActorRestarts; n != 0 || !b.Connected(a.ID()) {
		t.Fatalf("after a subscriber's panic: %d actor restarts, connected %v", n, b.Connected(a.ID()))
	}
}

// The routing actor and the gossip relay serve protocols like user protocol actors, and are unregistered like them
// when they stop: a protocol left to a stopped actor would take the credits of every message sent to it for good
// (see heldCredits).
func TestStoppedRoutingActorAndRelayAreUnregistered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := startTestNode(t, ctx, func(*Config) {})
	for _, p := range []string{routing.Protocol, gossip.Protocol} {
		pid := n.protocols.get(p)
		if pid == nil {
			t.Fatalf("%s is not registered", p)
		}
		if err := n.system.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, ctx, func() bool { return n.protocols.get(p) == nil }, p+" is still registered to its stopped actor")
	}
}

// Once the relay is stopped for good (its supervisor, the guardian, stops it after too many panics), the gossip
// calls fail at once with gossip.ErrRelayStopped. They used to wait for their context, forever with
// context.Background(): the requests went to a dead actor, and only Close ended the wait.
func TestGossipCallsFailOnceTheRelayStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true })
	pid := n.protocols.get(gossip.Protocol)
	if pid == nil {
		t.Fatal("the relay is not registered")
	}
	if err := n.system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Publish": func() error {
			_, err := n.Publish(context.Background(), "blocks", wrapperspb.String("hi"))
			return err
		},
		"Subscribe": func() error {
			_, err := n.Subscribe(context.Background(), "blocks", func(*gossip.Delivery) {})
			return err
		},
		"Topic": func() error {
			_, err := n.Topic(context.Background(), "blocks")
			return err
		},
		"GossipStats": func() error {
			_, err := n.GossipStats(context.Background())
			return err
		},
	}
	failEachWith(t, ctx, calls, gossip.ErrRelayStopped, "after the relay stopped")
}

// failEachWith runs each call and fails the test unless it returns an error matching want before ctx ends.
func failEachWith(t *testing.T, ctx context.Context, calls map[string]func() error, want error, when string) {
	t.Helper()
	for name, call := range calls {
		errc := make(chan error, 1)
		go func() { errc <- call() }()
		select {
		case err := <-errc:
			if !errors.Is(err, want) {
				t.Fatalf("%s %s: %v, want %v", name, when, err, want)
			}
		case <-ctx.Done():
			t.Fatalf("%s %s has not returned", name, when)
		}
	}
}

// Once the routing actor is stopped for good (its supervisor, the guardian, gives up on it after too many panics),
// the discovery calls fail at once with routing.ErrStopped, as the gossip calls do once the relay stopped. They
// used to wait for their context, forever with context.Background(), and so did a Request to a peer whose address
// needed a lookup.
func TestDiscoveryCallsFailOnceTheRoutingActorStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := startTestNode(t, ctx, func(*Config) {})
	pid := n.protocols.get(routing.Protocol)
	if pid == nil {
		t.Fatal("the routing actor is not registered")
	}
	if err := n.system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, ctx, func() bool { return n.protocols.get(routing.Protocol) == nil }, "the routing actor is still registered")
	calls := map[string]func() error{
		"FindClosest": func() error {
			_, err := n.FindClosest(context.Background(), routing.Key{1})
			return err
		},
		"Lookup": func() error {
			_, err := n.Lookup(context.Background(), session.NodeID{7})
			return err
		},
		"RoutingTable": func() error {
			_, err := n.RoutingTable(context.Background())
			return err
		},
		"Request to a peer not known": func() error {
			_, err := n.Request(context.Background(), session.NodeID{7}, "echo/1", wrapperspb.String("hi"))
			return err
		},
	}
	failEachWith(t, ctx, calls, routing.ErrStopped, "after the routing actor stopped")
}

// A call whose context ended says what it was: Topic, GossipStats and RoutingTable returned a bare "context
// canceled".
func TestEndedContextErrorsSayWhatEnded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := startTestNode(t, ctx, func(*Config) {})
	ended, end := context.WithCancel(ctx)
	end()
	calls := map[string]func() error{
		"gossip stats:":  func() error { _, err := n.GossipStats(ended); return err },
		`topic "t":`:     func() error { _, err := n.Topic(ended, "t"); return err },
		"routing table:": func() error { _, err := n.RoutingTable(ended); return err },
	}
	for prefix, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("error %q, want context.Canceled under %q", err, prefix)
		}
	}
}

// A peer manager that fails too often for its supervisor (the guardian stops it after 10 restarts in a minute)
// closes the node, which says why (Err, Done). The node used to stay half alive: Connect waited for its context,
// Ban and Disconnect returned nil, and every connection the listener accepted went to the stopped actor, never
// closed.
func TestNodeClosesItselfWhenThePeerManagerFailsForGood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true })
	if err := n.Err(); err != nil {
		t.Fatalf("Err of a running node: %v", err)
	}
	for i := range 11 {
		n.accepted.add(nil) // recorded as accepted, so that the peer manager takes it, and panics on it
		n.system.Root.Send(n.peerMgr, &acceptedConn{})
		pollUntil(t, ctx, func() bool { return n.Stats().ActorRestarts >= uint64(i+1) }, "the peer manager did not fail")
	}
	select {
	case <-n.Done():
	case <-ctx.Done():
		t.Fatal("the node did not close once its peer manager was stopped")
	}
	if err := n.Err(); !errors.Is(err, ErrNodeFailed) {
		t.Fatalf("Err = %v, want ErrNodeFailed", err)
	}
	if err := n.Connect(ctx, session.PeerAddr{ID: session.NodeID{7}, Addr: "127.0.0.1:1"}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect on the failed node: %v, want ErrClosed", err)
	}
	_ = n.Close() // waits for the close the failure started
	// A Close the application asks for is no failure, though it stops the peer manager too.
	m := startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true })
	_ = m.Close()
	if err := m.Err(); err != nil {
		t.Fatalf("Err after Close: %v, want nil", err)
	}
}

// dialCounter is the TCP transport, counting the dials of each address.
type dialCounter struct {
	session.TCPTransport
	mu    sync.Mutex
	dials map[string]int
}

func (d *dialCounter) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials[addr]++
	d.mu.Unlock()
	return d.TCPTransport.Dial(ctx, addr)
}

func (d *dialCounter) count(addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[addr]
}

// dialCountingNode starts a node without discovery whose dials are counted, adjusted by change; the context
// ends with the test.
func dialCountingNode(t *testing.T, change func(*Config)) (context.Context, *Node, *dialCounter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	dials := &dialCounter{dials: map[string]int{}}
	n := startTestNode(t, ctx, func(cfg *Config) {
		cfg.DisableDiscovery = true
		cfg.Transport = dials
		if change != nil {
			change(cfg)
		}
	})
	return ctx, n, dials
}

// A timer of a peer manager that fired just before a restart delivers its message to the next instance, which
// has armed timers of its own: a redial due from the instance before (here one that never was) dials nothing.
func TestRedialDueOfAnotherInstanceIsIgnored(t *testing.T) {
	ctx, n, dials := dialCountingNode(t, func(cfg *Config) {
		cfg.RedialBase, cfg.RedialMax = 10000*time.Hour, 10000*time.Hour // its own redial never comes in the test
	})
	wanted := session.PeerAddr{ID: session.NodeID{7}, Addr: "127.0.0.1:1"} // refused at once
	if err := n.Connect(ctx, wanted, true); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	n.system.Root.Send(n.peerMgr, &redialDue{id: wanted.ID})
	// A dial asked for after it: the stale redial, had it dialed, started its dial before this one.
	if err := n.Connect(ctx, session.PeerAddr{ID: session.NodeID{8}, Addr: "127.0.0.1:2"}, false); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if got := dials.count(wanted.Addr); got != 1 {
		t.Fatalf("the wanted peer was dialed %d times, want 1: a stale redialDue dialed it", got)
	}
}

// The peers the application disconnected are held for disconnectHold, at most maxHeld of them: expired holds
// go first, then the one that ends soonest.
func TestDisconnectHoldsAreBounded(t *testing.T) {
	m := &peerManager{held: make(map[session.NodeID]time.Time)}
	t0 := time.Unix(1_700_000_000, 0)
	id := func(i int) session.NodeID { return session.NodeID{byte(i), byte(i >> 8), 1} }
	for i := range maxHeld {
		m.hold(id(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if !m.isHeld(id(0), t0.Add(time.Second)) {
		t.Fatal("a peer disconnected a second ago is not held")
	}
	m.hold(id(maxHeld), t0.Add(time.Second))
	if len(m.held) != maxHeld {
		t.Fatalf("%d peers held, want at most %d", len(m.held), maxHeld)
	}
	if _, ok := m.held[id(0)]; ok {
		t.Fatal("the hold that ends soonest was kept over the newcomer")
	}
	if !m.isHeld(id(maxHeld), t0.Add(time.Second)) || m.isHeld(id(1), t0.Add(disconnectHold+time.Second)) {
		t.Fatal("holds do not end after disconnectHold")
	}
}

// Connect with a context already ended fails at once and dials nothing: it used to return the context's error and
// dial, and keep, the peer all the same.
func TestConnectWithAnEndedContextDialsNothing(t *testing.T) {
	ctx, n, dials := dialCountingNode(t, nil)
	ended, end := context.WithCancel(ctx)
	end()
	peer := session.PeerAddr{ID: session.NodeID{7}, Addr: "127.0.0.1:1"}
	if err := n.Connect(ended, peer, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with an ended context: %v, want context.Canceled", err)
	}
	// A dial asked for after it, with a live context: had the first one dialed, it started before this one.
	if err := n.Connect(ctx, session.PeerAddr{ID: session.NodeID{8}, Addr: "127.0.0.1:2"}, false); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if got := dials.count(peer.Addr); got != 0 {
		t.Fatalf("the peer of the ended Connect was dialed %d times, want 0", got)
	}
}

// Once unsubscribe returns, fn is not called again, even for the event being handed out at that moment: the event
// stream hands each event to the subscribers it held when the event came. Here the first subscriber unsubscribes
// the second while that event is handed out, so the second was still among those it held.
func TestUnsubscribedEventSubscriberIsNotCalledAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node { return startTestNode(t, ctx, func(cfg *Config) { cfg.DisableDiscovery = true }) }
	a, b := start(), start()
	var mu sync.Mutex
	var unsubSecond func()
	var secondCalls int
	firstSaw := make(chan struct{})
	unsubFirst, err := b.SubscribeEvents(func(m proto.Message) {
		if _, ok := m.(*messages.PeerConnected); !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if unsubSecond != nil {
			unsubSecond()
			unsubSecond = nil
			close(firstSaw)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsubFirst)
	second, err := b.SubscribeEvents(func(proto.Message) {
		mu.Lock()
		defer mu.Unlock()
		secondCalls++
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	unsubSecond = second
	mu.Unlock()
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstSaw:
	case <-ctx.Done():
		t.Fatal("no PeerConnected event")
	}
	// Another event after the unsubscription, which the event stream no longer holds the second for.
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, ctx, func() bool { return !b.Connected(a.ID()) }, "still connected")
	mu.Lock()
	defer mu.Unlock()
	if secondCalls != 0 {
		t.Fatalf("the unsubscribed subscriber was called %d times", secondCalls)
	}
}
