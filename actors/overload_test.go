package actors_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// One slow application protocol actor takes at most its share of a connection's inbound budget: past it the peer's
// messages to it are refused (a request with ErrOverloaded, a one-way message dropped and counted), and the
// connection goes on serving the other protocols, pings and gossip. The reader used to wait for the slow actor, and
// 6 messages of 900 KiB (over the 4 MiB InboundPendingBytes) stopped everything else from that peer.
func TestASlowProtocolActorDoesNotStopTheConnection(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	gate := make(chan struct{})
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	register(t, b, "slow/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			<-gate // a slow handler: a disk write, a database call
		}
	}))
	register(t, b, "echo/1", echo())
	box := newInbox()
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctxTimeout(t, 5*time.Second), "t", 1); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 900<<10) // under the 1 MiB MaxMessageSize
	for range 6 {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", wrapperspb.String(big)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return b.Stats().InboundOverloaded >= 1 },
		"b refusing a's messages to its slow actor past its share")
	// Its two messages taken hold 1.8 MiB of its 2 MiB share: 300 KiB more is past it.
	more := wrapperspb.String(strings.Repeat("y", 300<<10))
	if _, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "slow/1", more); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("a request to the slow actor: %v, want ErrOverloaded", err)
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
	close(gate)
}

// An application actor that is only behind (it processes its messages, slower than they come) keeps its
// back-pressure past its share: the reader waits for it, and nothing is refused or lost.
func TestABehindProtocolActorLosesNothing(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.InboundPending = 64 // a share of 32 messages
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
	if n := b.Stats().InboundOverloaded; n != 0 {
		t.Fatalf("%d messages refused to an actor that was only behind", n)
	}
}
