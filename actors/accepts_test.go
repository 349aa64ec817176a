package actors_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
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
	// The answer goes out before the supervisor counts the restart (countingDecider, on the parent).
	testkit.WaitFor(t, 10*time.Second, func() bool { return server.Stats().ActorRestarts >= 1 }, "the restart to be counted")
	if got := server.Stats().ActorRestarts; got != 1 {
		t.Fatalf("ActorRestarts = %d, want 1", got)
	}
	// The restarted actor serves the next request.
	if _, err := client.Request(ctxTimeout(t, 10*time.Second), server.ID(), "greet/1", wrapperspb.String("bob")); err != nil {
		t.Fatalf("request after the restart: %v", err)
	}
}

// A protocol actor subscribed with SubscribeProtocol gets only the topic's messages of the types it accepts, and
// its actor is never crashed by another (any publisher could otherwise stop its protocol). The others still reach
// the topic's other subscribers and are relayed, with no penalty: a first version rejected them in validation,
// which banned the honest peers that relayed them and starved the node's other subscribers.
func TestSubscribeProtocolDeliversOnlyAcceptedTypes(t *testing.T) {
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
	sub, err := server.SubscribeProtocol(ctx, "blocks", "chain/1")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	var plain atomic.Int32 // another subscriber of the topic on the same node
	if _, err := server.Subscribe(ctx, "blocks", func(*gossip.Delivery) { plain.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Subscribe(ctx, "blocks", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := publisher.WaitTopicPeers(ctx, "blocks", 1); err != nil {
		t.Fatal(err)
	}
	for i := range int32(4) { // more than Router.PenaltyThreshold: a penalty would have banned the publisher
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
	testkit.WaitFor(t, 10*time.Second, func() bool { return plain.Load() == 5 }, "the plain subscriber to get all 5")
	st, err := server.GossipStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Router.Rejected != 0 || !server.Connected(publisher.ID()) {
		t.Fatalf("rejected %d, publisher connected %v: the other types were punished", st.Router.Rejected, server.Connected(publisher.ID()))
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
	stopped := protocolStops(t, server)
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

// Requests still in a protocol actor's mailbox when it stops for good are answered (ErrUnknownProtocol, the answer
// a request to a protocol the node does not serve gets): they were lost with the actor, and their senders waited
// for their timeouts.
func TestRequestsQueuedWhenAProtocolStopsAreAnswered(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ProtocolRestarts = 0
	}))
	nw.Connect(0, 1)
	client, server := nw.Nodes[0], nw.Nodes[1]
	gate := make(chan struct{})
	err := server.RegisterFunc("boom/1", func(in *actors.Inbound) {
		<-gate // the first request holds the actor until every request has arrived
		panic("protocol actor bug")
	})
	if err != nil {
		t.Fatal(err)
	}
	const requests = 8 // within the connection's inbound credits (Config.InboundPending)
	ctx := ctxTimeout(t, time.Minute)
	errs := make(chan error, requests)
	for range requests {
		go func() {
			_, err := client.Request(ctx, server.ID(), "boom/1", wrapperspb.String("x"))
			errs <- err
		}()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return server.Stats().MessagesIn["boom/1"] == requests },
		"the server to read every request")
	close(gate)
	for range requests {
		err := <-errs
		if !errors.Is(err, actors.ErrRemote) && !errors.Is(err, actors.ErrUnknownProtocol) {
			t.Fatalf("a request to the stopped protocol: %v, want an answer (ErrRemote or ErrUnknownProtocol)", err)
		}
	}
}

// Registrations that could never work are refused: an Accepts with no type, or with a type the program cannot
// decode (it answered every payload with BAD_PAYLOAD); SubscribeProtocol for a RegisterFunc protocol (the function
// takes only peers' messages: the topic's were swallowed); a Config.Protocols entry whose actor cannot be spawned
// (Start went on without it, and peers got UNKNOWN_PROTOCOL).
func TestRegistrationsThatCannotWorkAreRefused(t *testing.T) {
	n := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	props := actor.PropsFromFunc(func(actor.Context) {})
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{Name: proto.String("unlinked.proto"),
		Package: proto.String("actormesh.test"), MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Unlinked")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlinked := dynamicpb.NewMessage(fd.Messages().Get(0)) // a type of no package linked into the program
	for name, opt := range map[string]actors.RegisterOption{
		"Accepts()":              actors.Accepts(),
		"Accepts(nil)":           actors.Accepts(nil),
		"Accepts(unlinked type)": actors.Accepts(unlinked),
	} {
		if _, err := n.Register("x/1", props, opt); !errors.Is(err, actors.ErrInvalidArgument) {
			t.Errorf("Register with %s: %v, want ErrInvalidArgument", name, err)
		}
		cfg := actors.DefaultConfig()
		cfg.Protocols = []actors.Protocol{{ID: "x/1", Props: props, Options: []actors.RegisterOption{opt}}}
		if err := cfg.Validate(); !errors.Is(err, actors.ErrInvalidArgument) {
			t.Errorf("Config.Protocols with %s: Validate = %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := n.RegisterFunc("fn/1", func(*actors.Inbound) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.SubscribeProtocol(ctxTimeout(t, 5*time.Second), "t", "fn/1"); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("SubscribeProtocol for a RegisterFunc protocol: %v, want ErrInvalidArgument", err)
	}

	cfg := actors.DefaultConfig()
	cfg.DisableDiscovery = true
	cfg.Protocols = []actors.Protocol{{ID: "bad/1", Props: actor.PropsFromProducer(func() actor.Actor { panic("no actor") })}}
	bad, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Start(ctxTimeout(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "bad/1") {
		t.Fatalf("Start with a Config.Protocols actor that cannot be spawned: %v, want an error naming it", err)
	}
}
