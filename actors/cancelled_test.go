package actors_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A call under a context that has ended already sends nothing and says so: Publish used to publish and still
// return context.Canceled (its retry then failed with ErrDuplicate), Request sent the request (the remote handler
// ran) and Send returned nil.
func TestCallsUnderAnEndedContextSendNothing(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	var got atomic.Int32
	register(t, b, "count/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			got.Add(1)
			if in.IsRequest() {
				_ = in.Reply(wrapperspb.String("ok"))
			}
		}
	}))
	box := newInbox()
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 10*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ended, b.ID(), "count/1", wrapperspb.String("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send under an ended context: %v, want context.Canceled", err)
	}
	if _, err := a.Request(ended, b.ID(), "count/1", wrapperspb.String("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Request under an ended context: %v, want context.Canceled", err)
	}
	if _, err := a.Publish(ended, "t", wrapperspb.String("once")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish under an ended context: %v, want context.Canceled", err)
	}
	// One connection, one order: the request below reaches b after whatever the calls above sent.
	if _, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "count/1", wrapperspb.String("x")); err != nil {
		t.Fatal(err)
	}
	if n := got.Load(); n != 1 {
		t.Fatalf("b's protocol actor got %d messages, want only the last request's", n)
	}
	id, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("once"))
	if err != nil {
		t.Fatalf("Publish of the payload whose publication under an ended context failed: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return box.times(id) == 1 }, "b got the message")
}

// Calls before Start fail with ErrNotStarted, whether or not they would have had to dial: with discovery off and
// no address known, Send returned ErrUnknownPeer.
func TestDirectCallsBeforeStartFailWithErrNotStarted(t *testing.T) {
	n := unstartedNode(t)
	peer := testkit.NewNetwork(t, 1).Nodes[0].ID()
	if err := n.Send(ctxTimeout(t, time.Second), peer, "x/1", wrapperspb.String("x")); !errors.Is(err, actors.ErrNotStarted) {
		t.Fatalf("Send before Start: %v, want ErrNotStarted", err)
	}
	if _, err := n.Request(ctxTimeout(t, time.Second), peer, "x/1", wrapperspb.String("x")); !errors.Is(err, actors.ErrNotStarted) {
		t.Fatalf("Request before Start: %v, want ErrNotStarted", err)
	}
	if _, err := n.Ping(ctxTimeout(t, time.Second), peer); !errors.Is(err, actors.ErrNotStarted) {
		t.Fatalf("Ping before Start: %v, want ErrNotStarted", err)
	}
}
