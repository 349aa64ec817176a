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
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// sinkActor registers protocol p on n with an actor that counts the peers' messages it gets.
func sinkActor(t *testing.T, n *actors.Node, p string, delivered *atomic.Int64) *actor.PID {
	t.Helper()
	pid, err := n.Register(p, actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			delivered.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// Every Send that returned nil while the receiver closed the connection (a ban: nothing more is delivered from
// the peer, and what it still sends is read and dropped) is delivered or counted: in the sender's QueueDropped,
// or in the receiver's InboundDropped["closing"]. The receiver counted nothing before (an audit's finding: 219 to
// 1592 of such Sends in a run, none counted).
func TestMessagesReadOnAClosingConnectionAreCounted(t *testing.T) {
	for _, c := range []struct {
		name  string
		close func(b, a *actors.Node) error
	}{
		{"disconnect", func(b, a *actors.Node) error { return b.Disconnect(a.ID()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
			a, b := nw.Nodes[0], nw.Nodes[1]
			var delivered, sent atomic.Int64
			sinkActor(t, b, "sink/1", &delivered)
			nw.Connect(0, 1)
			payload := wrapperspb.String(strings.Repeat("x", 2000))
			started, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				for i := range 3000 {
					if i == 200 {
						close(started)
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					err := a.Send(ctx, b.ID(), "sink/1", payload)
					cancel()
					if err != nil && i < 200 {
						close(started)
						return
					}
					if err == nil {
						sent.Add(1)
					}
				}
			}()
			<-started
			if err := c.close(b, a); err != nil {
				t.Fatal(err)
			}
			<-done
			accounted := func() int64 {
				return delivered.Load() + int64(a.Stats().QueueDropped) + int64(b.Stats().InboundDropped["closing"])
			}
			deadline := time.Now().Add(10 * time.Second)
			for accounted() < sent.Load() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if accounted() < sent.Load() {
				t.Fatalf("sent %d, delivered %d, sender QueueDropped %d, receiver InboundDropped %v", sent.Load(), delivered.Load(), a.Stats().QueueDropped, b.Stats().InboundDropped)
			}
		})
	}
}

// What a peer sends after the node said goodbye (here: after reading it, as a peer that ignores it would; an honest
// peer's messages in flight land the same way) is read and dropped: each one counts in InboundDropped["closing"].
func TestMessagesAfterTheGoodbyeCountAsDroppedClosing(t *testing.T) {
	for _, c := range []struct {
		name  string
		close func(b *actors.Node, peer session.NodeID) error
	}{
		{"disconnect", func(b *actors.Node, peer session.NodeID) error { return b.Disconnect(peer) }},
		{"ban", func(b *actors.Node, peer session.NodeID) error { return b.Ban(peer, time.Minute, "test") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
			var delivered atomic.Int64
			sinkActor(t, b, "sink/1", &delivered)
			sc, peer := rawPeer(t, b)
			if err := c.close(b, peer); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := sc.ReadMessage()
				if err != nil {
					t.Fatalf("no goodbye: %v", err)
				}
				env := &messages.Envelope{}
				if proto.Unmarshal(m, env) == nil && env.GetDisconnect() != nil {
					break
				}
			}
			payload, _ := anypb.New(wrapperspb.String("after the goodbye"))
			msg, _ := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
				Protocol: "sink/1", Kind: messages.DirectKind_DIRECT_KIND_ONEWAY, Payload: payload,
			}}})
			const sends = 20
			for range sends {
				if err := sc.WriteMessages(msg); err != nil {
					t.Fatal(err)
				}
			}
			_ = sc.CloseWrite()
			testkit.WaitFor(t, 5*time.Second, func() bool { return b.Stats().InboundDropped["closing"] == sends },
				"the messages after the goodbye counted dropped")
			if delivered.Load() != 0 {
				t.Fatalf("%d messages sent after the goodbye were delivered", delivered.Load())
			}
		})
	}
}

// One-way messages left in a protocol actor's mailbox when it stops for good are lost with it: they count in
// InboundDropped["protocol_stopped"], where nothing counted them before (the ProtocolStopped event and the log
// only said that the actor stopped).
func TestMessagesLostWithAStoppedProtocolActorAreCounted(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	release := make(chan struct{})
	var got atomic.Int64
	pid, err := b.Register("held/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			if got.Add(1) == 1 {
				<-release // holds the rest in the mailbox
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	nw.Connect(0, 1)
	const sends = 10
	for range sends {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "held/1", wrapperspb.String("m")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Stats().MessagesIn["held/1"] == sends }, "all read by b")
	b.ActorSystem().Root.Stop(pid) // a system message: the actor stops before it takes the rest
	close(release)
	lost := func() int64 { return int64(b.Stats().InboundDropped["protocol_stopped"]) }
	testkit.WaitFor(t, 5*time.Second, func() bool { return got.Load()+lost() == sends }, "every message processed or counted lost")
	if lost() == 0 {
		t.Fatalf("no message counted lost; the actor processed %d of %d", got.Load(), sends)
	}
}

// An Inbound a protocol actor passes on to another protocol actor that stops before it takes it is counted lost,
// as one its own actor never took: in InboundDropped["protocol_stopped"], a request answered with
// ErrUnknownProtocol. protoactor drops the messages left in a stopped actor's mailbox and those sent to it
// afterwards without a trace, and these were counted nowhere (front had processed them), a request's sender
// waiting for its timeout.
func TestInboundsPassedOnToAProtocolActorThatStopsAreCounted(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	release := make(chan struct{})
	var took, passed atomic.Int64
	worker, err := b.Register("worker/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			if took.Add(1) == 1 {
				<-release // holds the rest in the mailbox
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Register("front/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			ctx.Send(worker, in)
			passed.Add(1)
		}
	})); err != nil {
		t.Fatal(err)
	}
	stops := protocolStops(t, b)
	nw.Connect(0, 1)
	const sends = 10
	for range sends {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "front/1", wrapperspb.String("m")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return passed.Load() == sends && took.Load() == 1 },
		"every message passed on to the worker")
	b.ActorSystem().Root.Stop(worker) // a system message: the worker stops before it takes the rest
	close(release)
	lost := func() int64 { return int64(b.Stats().InboundDropped["protocol_stopped"]) }
	if testkit.Poll(context.Background(), 5*time.Second, func() bool { return took.Load()+lost() == sends }) != nil {
		t.Fatalf("of %d messages passed on, the worker took %d and %d were counted lost", sends, took.Load(), lost())
	}
	select {
	case p := <-stops:
		if p != "worker/1" {
			t.Fatalf("protocol %q stopped, want worker/1", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the worker's protocol was not unregistered")
	}
	// Passed on to the worker gone: counted at once, and a request answered.
	before := lost()
	if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "front/1", wrapperspb.String("m")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return lost() == before+1 }, "the message passed on to the stopped worker counted lost")
	if _, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "front/1", wrapperspb.String("r")); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Fatalf("a request passed on to the stopped worker: %v, want ErrUnknownProtocol", err)
	}
	if got := lost(); got != before+2 {
		t.Fatalf("InboundDropped[protocol_stopped] = %d, want %d", got, before+2)
	}
}

// The messages a node refuses (a protocol it does not serve, a payload type its protocol does not accept) count
// in InboundDropped by reason; they counted only in MessagesIn, as if delivered (an audit's finding).
func TestRefusedMessagesCountAsDropped(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	if err := b.RegisterFunc("typed/1", func(*actors.Inbound) {}, actors.Accepts(&wrapperspb.Int64Value{})); err != nil {
		t.Fatal(err)
	}
	nw.Connect(0, 1)
	for range 3 {
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "typed/1", wrapperspb.String("wrong type")); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(ctxTimeout(t, 5*time.Second), b.ID(), "nobody/1", wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool {
		d := b.Stats().InboundDropped
		return d["type_refused"] == 3 && d["unknown_protocol"] == 3
	}, "the refusals counted")
	if d := b.Stats().InboundDropped; d["closing"] != 0 || d["protocol_stopped"] != 0 || d["bad_payload"] != 0 {
		t.Fatalf("InboundDropped = %v, want only the refusals", d)
	}
}
