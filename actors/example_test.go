package actors_test

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Two nodes on loopback: b serves a "greet/1" protocol actor, a connects to b and sends it a typed request.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	start := func() *actors.Node {
		n, err := actors.NewNode(actors.DefaultConfig()) // fresh identity, listens on a free 127.0.0.1 port
		if err != nil {
			panic(err)
		}
		if err := n.Start(ctx); err != nil {
			panic(err)
		}
		return n
	}
	a, b := start(), start()
	defer a.Close()
	defer b.Close()

	// A protocol actor receives every message peers send to its protocol as an *actors.Inbound. Accepts lets only
	// StringValue payloads through (a peer sending another type gets ErrBadPayload), so the assertion is safe.
	greeter := actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*actors.Inbound); ok && in.IsRequest() {
			name := in.Payload.(*wrapperspb.StringValue).GetValue()
			_ = in.Reply(wrapperspb.String("hello, " + name))
		}
	})
	if _, err := b.Register("greet/1", greeter, actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		panic(err)
	}

	// b.Addr() is b's address in its one text form, <id>@host:port; the handshake checks the id.
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		panic(err)
	}
	reply, err := a.Request(ctx, b.ID(), "greet/1", wrapperspb.String("alice"))
	if err != nil {
		panic(err)
	}
	fmt.Println(reply.(*wrapperspb.StringValue).GetValue())
	// Output: hello, alice
}

// Two nodes broadcast on a topic: b subscribes, a publishes once b's subscription has reached it.
func ExampleNode_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := connectedPair(ctx)
	defer a.Close()
	defer b.Close()

	got := make(chan *gossip.Delivery, 1)
	sub, err := b.Subscribe(ctx, "blocks", func(d *gossip.Delivery) { got <- d })
	if err != nil {
		panic(err)
	}
	defer sub.Cancel()
	// Publishing before any peer has joined the topic fails with gossip.ErrNoPeers: wait for b's subscription.
	if err := a.WaitTopicPeers(ctx, "blocks", 1); err != nil {
		panic(err)
	}
	if _, err := a.Publish(ctx, "blocks", wrapperspb.String("block 1")); err != nil {
		panic(err)
	}
	d := <-got
	fmt.Println(d.Payload.(*wrapperspb.StringValue).GetValue(), "from a:", d.Origin == a.ID(), "hops:", d.Hops)
	// Output: block 1 from a: true hops: 1
}

// A protocol actor takes a topic's messages in its mailbox beside its peers' messages.
func ExampleNode_SubscribeProtocol() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := connectedPair(ctx)
	defer a.Close()
	defer b.Close()

	heights := make(chan string, 1)
	_, err := b.Register("chain/1", actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actors.TopicMessage: // a block announced on the "blocks" topic
			heights <- m.Payload.(*wrapperspb.StringValue).GetValue()
		case *actors.Inbound: // a peer's direct message to chain/1
		}
	}), actors.Accepts(&wrapperspb.StringValue{})) // other payload types never reach it, from peers or the topic
	if err != nil {
		panic(err)
	}
	sub, err := b.SubscribeProtocol(ctx, "blocks", "chain/1")
	if err != nil {
		panic(err)
	}
	defer sub.Cancel()
	if err := a.WaitTopicPeers(ctx, "blocks", 1); err != nil {
		panic(err)
	}
	if _, err := a.Publish(ctx, "blocks", wrapperspb.String("block 2")); err != nil {
		panic(err)
	}
	fmt.Println(<-heights)
	// Output: block 2
}

// A goroutine of the application's follows a node's peer events, and may call the node as it does: here it pings
// every peer that connects.
func ExampleNode_Events() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := startNode(ctx), startNode(ctx)

	events, err := b.Events(64) // up to 64 events not yet read; more are dropped and counted (Dropped)
	if err != nil {
		panic(err)
	}
	pinged, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events.C { // closed by events.Close, or by b.Close once its last events are in
			switch e := ev.(type) {
			case *messages.PeerConnected:
				id, _ := session.NodeIDFromBytes(e.GetPeerId())
				_, err := b.Ping(ctx, id)
				fmt.Println("peer up, ping error:", err)
				close(pinged)
			case *messages.PeerDisconnected:
				fmt.Println("peer down:", e.GetReason())
			}
		}
	}()
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		panic(err)
	}
	<-pinged
	_ = a.Close() // b's connection to a ends
	_ = b.Close()
	<-done
	// Output:
	// peer up, ping error: <nil>
	// peer down: DISCONNECT_REASON_SHUTDOWN
}

// connectedPair starts two nodes without discovery (connected by hand: no DHT needed), a connected to b.
func connectedPair(ctx context.Context) (a, b *actors.Node) {
	a, b = startNode(ctx), startNode(ctx)
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		panic(err)
	}
	return a, b
}

// startNode starts a node without discovery on a free 127.0.0.1 port.
func startNode(ctx context.Context) *actors.Node {
	cfg := actors.DefaultConfig()
	cfg.DisableDiscovery = true
	n, err := actors.NewNode(cfg)
	if err != nil {
		panic(err)
	}
	if err := n.Start(ctx); err != nil {
		panic(err)
	}
	return n
}
