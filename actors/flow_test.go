package actors_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// gated registers on n a protocol actor that counts the messages it gets and then waits until open is called (a
// slow handler: a disk write, a database call). open is called when the test ends at the latest.
func gated(t *testing.T, n *actors.Node, protocol string) (open func(), got *atomic.Int64) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open) // registered after the network's: runs first, so that Close does not wait on the actor
	got = new(atomic.Int64)
	register(t, n, protocol, actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			got.Add(1)
			<-gate
		}
	}))
	return open, got
}

// One slow application protocol actor holds back its own senders and nothing else: a's Send and Request to it wait
// for room in b's window for the protocol (half of b's InboundPendingBytes, 2 MiB), and fail with ErrOverloaded when
// their context ends first, sending nothing; the connection goes on serving b's other protocols, pings and gossip;
// and every message a's Send took reaches the actor once it catches up. Before flow control, b's reader waited for
// the slow actor (6 messages of 900 KiB stopped everything else from a), and later it dropped what was past the
// actor's share after a second.
func TestASlowProtocolActorHoldsBackOnlyItsSenders(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	open, got := gated(t, b, "slow/1")
	register(t, b, "echo/1", echo())
	box := newInbox()
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 5*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	big := wrapperspb.String(strings.Repeat("x", 900<<10)) // under the 1 MiB MaxMessageSize
	for range 2 {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", big); err != nil {
			t.Fatal(err)
		}
	}
	// The two hold 1.8 MiB of the actor's 2 MiB: a third waits, and gives up with its context.
	if err := a.Send(ctxTimeout(t, 300*time.Millisecond), b.ID(), "slow/1", big); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("a send past the slow actor's window: %v, want ErrOverloaded", err)
	}
	more := wrapperspb.String(strings.Repeat("y", 300<<10))
	if _, err := a.Request(ctxTimeout(t, 300*time.Millisecond), b.ID(), "slow/1", more); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("a request past the slow actor's window: %v, want ErrOverloaded", err)
	}
	if s := a.Stats(); s.SendsHeldBack != 2 || s.SendsOverloaded != 2 {
		t.Fatalf("a's SendsHeldBack %d, SendsOverloaded %d; want 2 and 2", s.SendsHeldBack, s.SendsOverloaded)
	}
	if reply, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("abc")); err != nil ||
		reply.(*wrapperspb.StringValue).GetValue() != "cba" {
		t.Fatalf("echo/1 while the slow actor is behind: %v, %v", reply, err)
	}
	if _, err := a.Ping(ctxTimeout(t, 5*time.Second), b.ID()); err != nil {
		t.Fatalf("a ping while the slow actor is behind: %v", err)
	}
	id, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("news"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return box.times(id) == 1 }, "gossip while the slow actor is behind")

	// A send that waits goes once the actor catches up.
	sent := make(chan error, 1)
	go func() { sent <- a.Send(ctxTimeout(t, 10*time.Second), b.ID(), "slow/1", big) }()
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Stats().SendsHeldBack == 3 }, "the third send waiting")
	open()
	if err := <-sent; err != nil {
		t.Fatalf("the send waiting for the actor: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 3 }, "the actor got the three messages sent")
	if n := b.Stats().MessagesIn["slow/1"]; n != 3 {
		t.Fatalf("b read %d messages to slow/1, want the 3 sent (those that failed were never sent)", n)
	}
}

// An application actor that is only behind (it processes its messages, slower than they come) loses nothing: its
// sender waits for it.
func TestABehindProtocolActorLosesNothing(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.InboundPending = 64 // a window of 32 messages
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	var got atomic.Int64
	register(t, b, "slowish/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			time.Sleep(100 * time.Microsecond) // the work of a slow consumer
			got.Add(1)
		}
	}))
	nw.Connect(0, 1)
	const count = 3000
	for i := range count {
		if err := a.Send(ctxTimeout(t, 10*time.Second), b.ID(), "slowish/1", wrapperspb.UInt64(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return got.Load() == count }, "every message at the actor")
	if a.Stats().SendsHeldBack == 0 {
		t.Fatal("a never waited for b's window: 3000 sends to an actor taking 32 at a time")
	}
}

// flowNetwork is two nodes of a 64 KiB inbound budget (a window of 32 KiB per protocol), discovery off.
func flowNetwork(t *testing.T, configure func(cfg *actors.Config)) *testkit.Network {
	return testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.MaxMessageSize = 64 << 10
		cfg.InboundPendingBytes = 64 << 10
		if configure != nil {
			configure(cfg)
		}
	}))
}

// A peer that sends past the node's window breaks flow control: it is disconnected with reason FLOW_CONTROL, and
// the node's other peers are served.
func TestAPeerSendingPastTheWindowIsDisconnected(t *testing.T) {
	b := flowNetwork(t, nil).Nodes[1]
	gated(t, b, "slow/1")
	register(t, b, "echo/1", echo())
	events := watchEvents(t, b)
	sc, id := rawPeer(t, b)
	any, err := anypb.New(wrapperspb.Bytes(make([]byte, 12<<10)))
	if err != nil {
		t.Fatal(err)
	}
	env, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "slow/1", Kind: messages.DirectKind_DIRECT_KIND_ONEWAY, Payload: any,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // 36 KiB: past the 32 KiB of slow/1's window
		if err := sc.WriteMessages(env); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool {
		return events.sawDisconnect(id, messages.DisconnectReason_DISCONNECT_REASON_FLOW_CONTROL)
	}, "b disconnecting the raw peer with FLOW_CONTROL")
	// The message past the window was read and handed to no actor: it counts as dropped on a closing connection.
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Stats().InboundDropped["closing"] == 1 },
		"the message past the window counted in InboundDropped[closing]")
	assertServes(t, b)
}

// A peer that gives back more of the node's window than the node has outstanding breaks flow control too.
func TestAPeerGrantingMoreThanOutstandingIsDisconnected(t *testing.T) {
	b := flowNetwork(t, nil).Nodes[1]
	events := watchEvents(t, b)
	sc, id := rawPeer(t, b)
	env, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_WindowUpdate{WindowUpdate: &messages.WindowUpdate{
		Protocol: "chat/1", Messages: 1, Bytes: 100,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(env); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool {
		return events.sawDisconnect(id, messages.DisconnectReason_DISCONNECT_REASON_FLOW_CONTROL)
	}, "b disconnecting the raw peer with FLOW_CONTROL")
}

// A protocol actor that stops gives its senders back the window its unprocessed messages held, at once: the
// connection's reader would take them back only when it next reads, and a sender waiting for that window sends
// nothing more.
func TestAStoppedProtocolActorGivesBackItsWindow(t *testing.T) {
	nw := flowNetwork(t, func(cfg *actors.Config) { cfg.ProtocolRestarts = 0 })
	a, b := nw.Nodes[0], nw.Nodes[1]
	gate := make(chan struct{})
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	register(t, b, "fragile/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			<-gate
			panic("the handler failed") // with ProtocolRestarts 0 the actor stops, and loses its mailbox
		}
	}))
	nw.Connect(0, 1)
	small := wrapperspb.Bytes(make([]byte, 10<<10))
	for range 2 { // the first in the actor, the second in its mailbox
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "fragile/1", small); err != nil {
			t.Fatal(err)
		}
	}
	sent := make(chan error, 1)
	go func() { // 20 KiB more is past the 32 KiB window
		sent <- a.Send(ctxTimeout(t, 10*time.Second), b.ID(), "fragile/1", wrapperspb.Bytes(make([]byte, 20<<10)))
	}()
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Stats().SendsHeldBack == 1 }, "the third send waiting")
	close(gate)
	if err := <-sent; err != nil {
		t.Fatalf("the send waiting for the stopped actor's window: %v, want it sent", err)
	}
}

// A message the node refuses before any actor holds it (to a protocol it does not serve, of a type the protocol
// does not accept) gives its window back at once: the sender's window would shrink with every such message, and
// after a window's worth of them its sends to that protocol would wait for ever.
func TestRefusedMessagesGiveTheirWindowBack(t *testing.T) {
	nw := flowNetwork(t, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	if _, err := b.Register("strings/1", echo(), actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		t.Fatal(err)
	}
	nw.Connect(0, 1)
	big := wrapperspb.Bytes(make([]byte, 20<<10))
	// A protocol id of MaxProtocolIDLength, which Send takes, is given back too (only longer ones are not).
	for _, protocol := range []string{"nobody/1", "strings/1", strings.Repeat("n", actors.MaxProtocolIDLength)} {
		for i := range 4 { // 80 KiB, past the 32 KiB window
			if err := a.Send(ctxTimeout(t, 2*time.Second), b.ID(), protocol, big); err != nil {
				t.Fatalf("send %d to %s: %v", i, protocol, err)
			}
		}
	}
	if _, err := a.Request(ctxTimeout(t, 2*time.Second), b.ID(), "nobody/1", big); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Fatalf("a request to a protocol b does not serve: %v, want ErrUnknownProtocol", err)
	}
}

// A node gives back what a protocol's actor processed by halves of the window, and at once to a sender that says
// it waits (WindowBlocked): messages are sent whole, so with less than half the window processed, one larger than
// what is left would wait for ever.
func TestASenderWaitingForRoomIsGivenItAtOnce(t *testing.T) {
	nw := flowNetwork(t, nil) // windows of 32 KiB per protocol
	a, b := nw.Nodes[0], nw.Nodes[1]
	open, got := gated(t, b, "slow/1")
	nw.Connect(0, 1)
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", wrapperspb.Bytes(make([]byte, 10<<10))); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 1 }, "the actor holding the first message")
	// 10 + 30 KiB is past the window: a waits, and says so while the actor still holds the first message; b gives
	// it back as soon as the actor processed it, though that is less than half the window.
	sent := make(chan error, 1)
	go func() {
		sent <- a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", wrapperspb.Bytes(make([]byte, 30<<10)))
	}()
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Stats().SendsHeldBack == 1 }, "the second send waiting")
	open()
	if err := <-sent; err != nil {
		t.Fatalf("a send waiting for the first message to be processed: %v", err)
	}
	// Processed before a waits: given back when a says it waits.
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 2 }, "the actor got the second message")
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", wrapperspb.Bytes(make([]byte, 10<<10))); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 3 }, "the actor got the third message")
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", wrapperspb.Bytes(make([]byte, 30<<10))); err != nil {
		t.Fatalf("a send waiting for what was processed to be given back: %v", err)
	}
}

// The application's window bounds what all its protocols hold together, so that a few slow protocols cannot fill
// the connection's inbound budget and stop its reader: a message to an idle protocol used to skip it, and five slow
// protocols holding one message of 900 KiB each (past the 4 MiB budget) stopped the peer's pings and other
// protocols (an audit's finding).
func TestSlowProtocolsTogetherDoNotStopTheReader(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "echo/1", echo())
	nw.Connect(0, 1)
	big := wrapperspb.String(strings.Repeat("x", 900<<10))
	var sent, overloaded int
	for i := range 5 {
		protocol := "slow/" + string(rune('a'+i))
		gated(t, b, protocol)
		switch err := a.Send(ctxTimeout(t, 300*time.Millisecond), b.ID(), protocol, big); {
		case err == nil:
			sent++
		case errors.Is(err, actors.ErrOverloaded):
			overloaded++
		default:
			t.Fatal(err)
		}
	}
	if sent != 3 || overloaded != 2 {
		t.Fatalf("%d sends taken and %d overloaded, want 3 (2.7 of the application's 3 MiB) and 2", sent, overloaded)
	}
	if _, err := a.Ping(ctxTimeout(t, 5*time.Second), b.ID()); err != nil {
		t.Fatalf("a ping while the slow protocols hold their messages: %v", err)
	}
	if reply, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("abc")); err != nil ||
		reply.(*wrapperspb.StringValue).GetValue() != "cba" {
		t.Fatalf("echo/1 while the slow protocols hold their messages: %v, %v", reply, err)
	}
}

// Senders on several goroutines, to a fast protocol and to a slow one, whose messages reach the peer in another
// order than they took the window in, are never found past it: the first version of the window's rule let b
// disconnect a honest a with FLOW_CONTROL within a second of this (an audit's finding).
func TestConcurrentSendersAreNeverPastTheWindow(t *testing.T) {
	nw := flowNetwork(t, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "fast/1", actor.PropsFromFunc(func(actor.Context) {}))
	register(t, b, "slowish/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			time.Sleep(200 * time.Microsecond)
		}
	}))
	events := watchEvents(t, b)
	nw.Connect(0, 1)
	var wg sync.WaitGroup
	failed := make(chan error, 6)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := range 6 {
		protocol, size := "slowish/1", 6<<10
		if i%2 == 1 {
			protocol, size = "fast/1", 40<<10
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := wrapperspb.Bytes(make([]byte, size))
			for time.Now().Before(deadline) {
				if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), protocol, msg); err != nil {
					failed <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatalf("a send failed: %v (b's disconnects of a: %v)", err, events.disconnectsFrom(a.ID()))
	}
	if n := events.disconnects(a.ID()); n != 0 {
		t.Fatalf("b disconnected a %d times: %v", n, events.disconnectsFrom(a.ID()))
	}
}

// An Inbound a protocol actor passes on to another protocol actor is released by the credit middleware of both,
// maybe at once: a plain flag made that a data race (-race), and a double release gives the credit and window back
// twice (an audit's finding). Every message is handled and the connection stays up.
func TestAnInboundPassedToAnotherProtocolActorIsReleasedOnce(t *testing.T) {
	var handled atomic.Int64
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.InboundPending = 64
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	worker, err := b.Register("worker/1", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actors.Inbound); ok {
			handled.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Register("front/1", actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*actors.Inbound); ok {
			c.Send(worker, in)
		}
	})); err != nil {
		t.Fatal(err)
	}
	nw.Connect(0, 1)
	ev := watchEvents(t, a)
	const count = 3000
	for k := range count {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "front/1", wrapperspb.UInt64(uint64(k))); err != nil {
			t.Fatalf("send %d: %v", k, err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return handled.Load() == count || ev.disconnects(b.ID()) > 0 },
		"every message handled")
	if d := ev.disconnectsFrom(b.ID()); len(d) > 0 {
		t.Fatalf("the connection closed: %v %s", d[0].Reason, d[0].Detail)
	}
}
