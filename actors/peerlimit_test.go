package actors_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A node whose MaxMessageSize is larger than its peer's sends the peer nothing over the peer's limit: Send and
// Request fail with ErrMessageTooLarge (the peer would have closed the connection, losing the message and every
// one queued with it), the connection stays up and the next message that fits is delivered.
func TestMessageOverThePeersLimitFailsAndKeepsTheConnection(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, c *actors.Config) {
		c.DisableDiscovery = true
		if i == 0 {
			c.MaxMessageSize = 4 << 20
			c.InboundPendingBytes = 16 << 20
			c.SendQueueBytes = 32 << 20
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	got := make(chan *actors.Inbound, 4)
	register(t, b, "big/1", collector(got))
	register(t, b, "echo/1", echo())
	nw.Connect(0, 1)
	ev := watchEvents(t, a)

	big := wrapperspb.Bytes(make([]byte, 2<<20))
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "big/1", big); !errors.Is(err, actors.ErrMessageTooLarge) ||
		!strings.Contains(err.Error(), "limit of peer") {
		t.Fatalf("Send of 2 MiB to a peer reading 1 MiB: %v, want ErrMessageTooLarge naming the peer's limit", err)
	}
	if _, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", big); !errors.Is(err, actors.ErrMessageTooLarge) {
		t.Fatalf("Request of 2 MiB to a peer reading 1 MiB: %v, want ErrMessageTooLarge", err)
	}
	fits := wrapperspb.Bytes(make([]byte, 512<<10))
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "big/1", fits); err != nil {
		t.Fatalf("Send of 512 KiB: %v", err)
	}
	select {
	case in := <-got:
		if n := len(in.Payload.(*wrapperspb.BytesValue).Value); n != 512<<10 {
			t.Fatalf("delivered %d bytes, want %d", n, 512<<10)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message that fits was not delivered")
	}
	if d := ev.disconnects(b.ID()); d != 0 || !a.Connected(b.ID()) {
		t.Fatalf("connected %v after %d disconnects, want the connection kept", a.Connected(b.ID()), d)
	}
	// Over the node's own limit, Send fails before it dials.
	if err := b.Send(ctxTimeout(t, 5*time.Second), newIdentity(t).NodeID(), "big/1", big); !errors.Is(err, actors.ErrMessageTooLarge) {
		t.Fatalf("Send over the node's own limit to an unknown peer: %v, want ErrMessageTooLarge before any dial", err)
	}
}

// A message over the peer's limit fails at once, not after waiting for the peer's window to open: no window would
// ever let it through.
func TestOversizedSendDoesNotWaitForTheWindow(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, c *actors.Config) {
		c.DisableDiscovery = true
		c.InboundPending = 4 // 2 messages per protocol
		if i == 0 {
			c.MaxMessageSize = 4 << 20
			c.InboundPendingBytes = 16 << 20
			c.SendQueueBytes = 32 << 20
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	release := make(chan struct{})
	register(t, b, "slow/1", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actors.Inbound); ok {
			<-release
		}
	}))
	t.Cleanup(func() { close(release) })
	nw.Connect(0, 1)
	for i := range 2 {
		if err := a.Send(ctxTimeout(t, 2*time.Second), b.ID(), "slow/1", wrapperspb.String("x")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	ctx := ctxTimeout(t, 10*time.Second)
	err := a.Send(ctx, b.ID(), "slow/1", wrapperspb.Bytes(make([]byte, 2<<20)))
	if !errors.Is(err, actors.ErrMessageTooLarge) || ctx.Err() != nil {
		t.Fatalf("oversized Send with the window closed: %v (context %v), want ErrMessageTooLarge at once", err, ctx.Err())
	}
}
