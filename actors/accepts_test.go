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
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// greeter answers requests to greet/1 and asserts their payload's type unchecked, as the README's example does:
// it panics on any other type.
func greeter(oneWays *atomic.Int32) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		in, ok := c.Message().(*actors.Inbound)
		if !ok {
			return
		}
		name := in.Payload.(*wrapperspb.StringValue).GetValue()
		if !in.IsRequest() {
			oneWays.Add(1)
			return
		}
		_ = in.Reply(wrapperspb.String("hello, " + name))
	})
}

// A peer sending a protocol registered with Accepts the wrong payload type gets ErrBadPayload, and its messages
// never reach the actor: before, each one crashed an actor written as the README's example, and after
// ProtocolRestarts of them the protocol was stopped for every peer.
func TestAcceptsKeepsOtherPayloadTypesFromTheActor(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	hostile, server := nw.Nodes[0], nw.Nodes[1]
	var oneWays atomic.Int32
	if _, err := server.Register("greet/1", greeter(&oneWays), actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	for range 2 * actors.DefaultConfig().ProtocolRestarts {
		_, err := hostile.Request(ctx, server.ID(), "greet/1", wrapperspb.Int32(7))
		if !errors.Is(err, actors.ErrBadPayload) {
			t.Fatalf("request of the wrong type: %v, want ErrBadPayload", err)
		}
		if err := hostile.Send(ctx, server.ID(), "greet/1", wrapperspb.Bool(true)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hostile.Send(ctx, server.ID(), "greet/1", wrapperspb.String("one way")); err != nil {
		t.Fatal(err)
	}
	reply, err := hostile.Request(ctx, server.ID(), "greet/1", wrapperspb.String("bob"))
	if err != nil {
		t.Fatalf("request of the right type after the wrong ones: %v", err)
	}
	if got := reply.(*wrapperspb.StringValue).GetValue(); got != "hello, bob" {
		t.Fatalf("reply %q", got)
	}
	if got := oneWays.Load(); got != 1 { // the request came after it on the same connection
		t.Fatalf("the actor got %d one-way messages, want only the StringValue", got)
	}
	if got := server.Stats().ActorRestarts; got != 0 {
		t.Fatalf("ActorRestarts = %d, want 0: a payload of another type reached the actor", got)
	}
}

// A request its protocol actor panics on is answered with an error at once; the requester used to wait for its
// timeout (Config.RequestTimeout, 10 s by default).
func TestARequestTheActorPanicsOnIsAnsweredAtOnce(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	client, server := nw.Nodes[0], nw.Nodes[1]
	var oneWays atomic.Int32
	if _, err := server.Register("greet/1", greeter(&oneWays)); err != nil { // no Accepts: it panics on an Int32Value
		t.Fatal(err)
	}
	_, err := client.Request(ctxTimeout(t, time.Minute), server.ID(), "greet/1", wrapperspb.Int32(7))
	var remote *actors.RemoteError
	if !errors.As(err, &remote) || !errors.Is(err, actors.ErrRemote) {
		t.Fatalf("request the actor panicked on: %v, want a *RemoteError (ErrRemote) at once", err)
	}
	if got := server.Stats().ActorRestarts; got != 1 {
		t.Fatalf("ActorRestarts = %d, want 1", got)
	}
	// The restarted actor serves the next request.
	if _, err := client.Request(ctxTimeout(t, 10*time.Second), server.ID(), "greet/1", wrapperspb.String("bob")); err != nil {
		t.Fatalf("request after the restart: %v", err)
	}
}

// A topic's messages of a payload type the protocol does not accept are rejected before they reach a protocol
// actor subscribed with SubscribeProtocol: any publisher could otherwise crash it until its protocol stopped.
func TestSubscribeProtocolRejectsOtherPayloadTypes(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	publisher, server := nw.Nodes[0], nw.Nodes[1]
	got := make(chan string, 16)
	props := actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*actors.TopicMessage); ok {
			got <- m.Payload.(*wrapperspb.StringValue).GetValue()
		}
	})
	if _, err := server.Register("chain/1", props, actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	var checked atomic.Int32 // the application's own validator still runs, after the type check
	sub, err := server.SubscribeProtocol(ctx, "blocks", "chain/1", gossip.WithValidator(func(_ context.Context, d *gossip.Delivery) gossip.Verdict {
		checked.Add(1)
		return gossip.Accept
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if _, err := publisher.Subscribe(ctx, "blocks", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := publisher.WaitTopicPeers(ctx, "blocks", 1); err != nil {
		t.Fatal(err)
	}
	// Two of another type (a third would have the publisher banned: Router.PenaltyThreshold), then the right one.
	for i := range int32(2) {
		if _, err := publisher.Publish(ctx, "blocks", wrapperspb.Int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := publisher.Publish(ctx, "blocks", wrapperspb.String("block 1")); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "block 1" {
			t.Fatalf("the actor got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the StringValue never reached the actor")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		st, err := server.GossipStats(ctx)
		return err == nil && st.Router.Rejected == 2
	}, "the server to reject the 2 messages of another type")
	if n := checked.Load(); n != 1 {
		t.Fatalf("the application's validator ran %d times, want once (for the StringValue only)", n)
	}
	if got := server.Stats().ActorRestarts; got != 0 {
		t.Fatalf("ActorRestarts = %d, want 0", got)
	}
}

// The protocols of Config.Protocols are served from the node's first connection: here the node dials its peer at
// Start (Config.Peers), and the peer requests the protocol the moment the connection is up. With Register, which
// needs a started node, such a request could come first and get ErrUnknownProtocol.
func TestConfigProtocolsAreServedFromTheFirstConnection(t *testing.T) {
	asker := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	ctx := ctxTimeout(t, 20*time.Second)
	replies := make(chan error, 1)
	unsubscribe, err := asker.SubscribeEvents(func(m proto.Message) {
		if e, ok := m.(*messages.PeerConnected); ok {
			id, _ := session.NodeIDFromBytes(e.GetPeerId())
			go func() {
				_, err := asker.Request(ctx, id, "greet/1", wrapperspb.String("first"))
				replies <- err
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	var oneWays atomic.Int32
	testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.Peers = []session.PeerAddr{asker.Addr()}
		cfg.Protocols = []actors.Protocol{{ID: "greet/1", Props: greeter(&oneWays),
			Options: []actors.RegisterOption{actors.Accepts(&wrapperspb.StringValue{})}}}
	}))
	select {
	case err := <-replies:
		if err != nil {
			t.Fatalf("the first request, as the connection came up: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no connection")
	}
	// Config.Protocols are checked like Register's arguments.
	props := actor.PropsFromFunc(func(actor.Context) {})
	for name, ps := range map[string][]actors.Protocol{
		"empty id":       {{ID: "", Props: props}},
		"nil props":      {{ID: "x/1", Props: nil}},
		"twice":          {{ID: "x/1", Props: props}, {ID: "x/1", Props: props}},
		"the node's own": {{ID: gossip.Protocol, Props: props}},
	} {
		cfg := actors.DefaultConfig()
		cfg.Protocols = ps
		if err := cfg.Validate(); !errors.Is(err, actors.ErrInvalidConfig) {
			t.Errorf("Protocols %s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// A protocol whose actor failed too often is stopped: the application hears of it (messages.ProtocolStopped) and
// can register it again. It used to learn nothing but a log line.
func TestStoppedProtocolIsAnnouncedAndCanBeRegisteredAgain(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ProtocolRestarts = 0 // the first panic stops it
	}))
	nw.Connect(0, 1)
	client, server := nw.Nodes[0], nw.Nodes[1]
	stopped := make(chan string, 1)
	unsubscribe, err := server.SubscribeEvents(func(m proto.Message) {
		if e, ok := m.(*messages.ProtocolStopped); ok {
			stopped <- e.GetProtocol()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	var oneWays atomic.Int32
	if _, err := server.Register("greet/1", greeter(&oneWays)); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	if _, err := client.Request(ctx, server.ID(), "greet/1", wrapperspb.Int32(7)); !errors.Is(err, actors.ErrRemote) {
		t.Fatalf("request the actor panicked on: %v, want ErrRemote", err)
	}
	select {
	case p := <-stopped:
		if p != "greet/1" {
			t.Fatalf("ProtocolStopped for %q", p)
		}
	case <-ctx.Done():
		t.Fatal("no ProtocolStopped event")
	}
	if _, err := server.Register("greet/1", greeter(&oneWays), actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		t.Fatalf("registering the stopped protocol again: %v", err)
	}
	if _, err := client.Request(ctx, server.ID(), "greet/1", wrapperspb.String("again")); err != nil {
		t.Fatalf("request to the protocol registered again: %v", err)
	}
}

// A protocol can be a plain function: RegisterFunc wraps it in a protocol actor, with Register's options.
func TestRegisterFuncServesAProtocolWithAFunction(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	client, server := nw.Nodes[0], nw.Nodes[1]
	err := server.RegisterFunc("upper/1", func(in *actors.Inbound) {
		_ = in.Reply(wrapperspb.String(strings.ToUpper(in.Payload.(*wrapperspb.StringValue).GetValue())))
	}, actors.Accepts(&wrapperspb.StringValue{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	reply, err := client.Request(ctx, server.ID(), "upper/1", wrapperspb.String("abc"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "ABC" {
		t.Fatalf("request: %v %v", reply, err)
	}
	if _, err := client.Request(ctx, server.ID(), "upper/1", wrapperspb.Int32(1)); !errors.Is(err, actors.ErrBadPayload) {
		t.Fatalf("request of another type: %v, want ErrBadPayload", err)
	}
	if err := server.RegisterFunc("nil/1", nil); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Fatalf("RegisterFunc with a nil handler: %v, want ErrInvalidArgument", err)
	}
	if err := server.RegisterFunc("upper/1", func(*actors.Inbound) {}); !errors.Is(err, actors.ErrProtocolRegistered) {
		t.Fatalf("RegisterFunc twice: %v, want ErrProtocolRegistered", err)
	}
}
