package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/testkit"
)

// bytesNetwork makes two nodes, a connected to b, whose inbound bytes (InboundPendingBytes) hold 64 KiB and credits
// (InboundPending) 4, without discovery: the test registers a protocol actor under the discovery protocol's name on
// b, which, as the node's own gossip and routing actors, has no window (flow control) and so can push the reader
// into its wait for bytes. b answers echo/1.
func bytesNetwork(t *testing.T) (a, b *actors.Node) {
	t.Helper()
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ProtocolRestarts = 0
		cfg.MaxMessageSize = 64 << 10
		cfg.InboundPendingBytes = 64 << 10
		cfg.InboundPending = 4
	}))
	a, b = nw.Nodes[0], nw.Nodes[1]
	register(t, b, "echo/1", echo())
	nw.Connect(0, 1)
	return a, b
}

// gatedActor returns the props of an actor that counts each message it receives in got and processes it once the
// test sends on gate, then panics if boom is set. The gate is closed when the test ends.
func gatedActor(t *testing.T, got *atomic.Int32, boom bool) (*actor.Props, chan struct{}) {
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			got.Add(1)
			<-gate
			if boom {
				panic("protocol actor bug")
			}
		}
	}), gate
}

// payloadOf returns a message whose payload (the bytes the credits count) is n bytes.
func payloadOf(t *testing.T, n int) proto.Message {
	t.Helper()
	for k := 2; k <= 4; k++ { // a tag and a length of 1 to 3 bytes
		if m := wrapperspb.String(strings.Repeat("x", n-k)); proto.Size(m) == n {
			return m
		}
	}
	t.Fatalf("no payload of %d bytes", n)
	return nil
}

// echoes sends an echo request from a to b and reports its error.
func echoes(a, b *actors.Node, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(ctx, b.ID(), "echo/1", wrapperspb.String("ping"))
		done <- err
	}()
	return done
}

// The messages a connection's protocol actors hold may fill InboundPendingBytes exactly, and a reader waiting for
// bytes (the node's own protocols have no window) reads on as soon as an actor releases some: a release signals
// the waiting reader. (A mutation audit: with the release's signal removed, or the budget's `<=` made `<`, no test
// failed; a reader waiting for bytes would then wait for good.)
func TestTheReaderWaitingForInboundBytesReadsOnOnceTheyAreReleased(t *testing.T) {
	a, b := bytesNetwork(t)
	var got atomic.Int32
	props, gate := gatedActor(t, &got, false)
	register(t, b, routing.Protocol, props)
	in := func() uint64 { return b.Stats().MessagesIn[routing.Protocol] }

	// Two messages of half the budget each, exactly InboundPendingBytes together: the first held by the actor,
	// the second, a request (so that the test sees it handed over: TrackedRequests), in its mailbox.
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), routing.Protocol, payloadOf(t, 32<<10)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 1 }, "the actor received the first message")
	second, reqCtx := payloadOf(t, 32<<10), ctxTimeout(t, 10*time.Second)
	go func() { _, _ = a.Request(reqCtx, b.ID(), routing.Protocol, second) }()
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.TrackedRequests(routing.Protocol) == 1 },
		"the second message, filling InboundPendingBytes exactly, handed to the actor")

	// A message past the budget: the reader waits for bytes, and the request behind it with it.
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), routing.Protocol, payloadOf(t, 128)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return in() == 3 }, "b read the third message")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := echoes(a, b, ctx)
	gate <- struct{}{} // the actor processes the first message: its bytes are released
	if err := <-done; err != nil {
		t.Fatalf("a request behind a message that waited for bytes the actor then released: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 2 }, "the actor received the second message")
}

// A message waiting for bytes whose actor stops meanwhile is refused, and the credit it took first is given back:
// otherwise each such message cost the connection one of its InboundPending credits for good. (A mutation audit:
// with that credit kept, no test failed.)
func TestAMessageWaitingForBytesGivesBackItsCreditWhenItsActorStops(t *testing.T) {
	a, b := bytesNetwork(t)
	in := func() uint64 { return b.Stats().MessagesIn[routing.Protocol] }

	var got atomic.Int32
	props, gate := gatedActor(t, &got, true)
	register(t, b, routing.Protocol, props)
	// A small message the actor holds, one of 40 KiB in its mailbox, another of 40 KiB that waits for bytes.
	for i, size := range []int{128, 40 << 10, 40 << 10} {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), routing.Protocol, payloadOf(t, size)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 1 && in() == 3 }, "b read the three messages")
	gate <- struct{}{} // the actor panics and stops with the second message in its mailbox
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.TrackedRequests(routing.Protocol) == -1 }, "the actor unregistered")
	if err := <-echoes(a, b, ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("a request after the actor stopped: %v", err)
	}

	// Every credit is back: three messages held by a new actor and a request take the four.
	var got2 atomic.Int32
	props2, _ := gatedActor(t, &got2, false)
	register(t, b, routing.Protocol, props2)
	for i := range 3 {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), routing.Protocol, payloadOf(t, 128)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := <-echoes(a, b, ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("a request taking the last of InboundPending credits: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got2.Load() == 1 && in() == 6 }, "the new actor received the first of its three messages")
}

// A reader waiting for bytes that a stopped actor's lost messages hold takes them back once that actor is
// unregistered, and reads on: those bytes would never be released otherwise, and the connection read nothing more.
// (A mutation audit: with the wait's reclaim removed, no test failed.)
func TestTheReaderWaitingForBytesTakesBackThoseOfAStoppedActor(t *testing.T) {
	a, b := bytesNetwork(t)
	var got atomic.Int32
	props, gate := gatedActor(t, &got, true)
	register(t, b, routing.Protocol, props)
	// A small message the actor holds, and one of 40 KiB in its mailbox, which it will lose.
	for i, size := range []int{128, 40 << 10} {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), routing.Protocol, payloadOf(t, size)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load() == 1 && b.Stats().MessagesIn[routing.Protocol] == 2 },
		"b read the two messages")
	// A request of 30 KiB to another actor: past InboundPendingBytes with the 40 KiB held, so the reader waits.
	done := make(chan error, 1)
	question := strings.Repeat("q", 30<<10)
	go func() {
		reply, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String(question))
		if err == nil && len(reply.(*wrapperspb.StringValue).GetValue()) != len(question) {
			err = errors.New("a reply of another size")
		}
		done <- err
	}()
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Stats().MessagesIn["echo/1"] == 1 }, "b read the request")
	gate <- struct{}{} // the actor panics and stops, losing the message of 40 KiB
	if err := <-done; err != nil {
		t.Fatalf("a request waiting for the bytes a stopped actor's lost message held: %v", err)
	}
}
