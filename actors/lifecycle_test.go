package actors

import (
	"context"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"
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
