package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A protocol actor's props asking for a bounded mailbox get the node's unbounded one: a dropping mailbox lost
// requests whose credits were never given back (their requesters waited for their timeouts, and they stayed
// tracked), and a blocking one blocked the connection's reader (an audit's finding).
func TestAProtocolActorsBoundedMailboxIsReplaced(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.InboundPending = 64 // 32 a protocol
	}))
	nw.Connect(0, 1)
	a, b := nw.Nodes[0], nw.Nodes[1]
	gate := make(chan struct{})
	var processed atomic.Int64
	if _, err := b.Register("d/1", actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*actors.Inbound); ok {
			if processed.Add(1) == 1 {
				<-gate // the others wait in the mailbox meanwhile
			}
			_ = in.Reply(in.Payload)
		}
	}, actor.WithMailbox(actor.BoundedDropping(4)))); err != nil {
		t.Fatal(err)
	}
	const k = 24
	errs := make(chan error, k)
	for range k {
		go func() {
			_, err := a.Request(ctxTimeout(t, 10*time.Second), b.ID(), "d/1", wrapperspb.String("x"))
			errs <- err
		}()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return b.TrackedRequests("d/1") == k }, "every request at the actor")
	close(gate)
	for range k {
		if err := <-errs; err != nil {
			t.Fatalf("a request to the actor: %v (%d processed)", err, processed.Load())
		}
	}
	if processed.Load() != k {
		t.Fatalf("%d requests processed, want %d", processed.Load(), k)
	}
}

// A protocol actor's panic is logged at error with its stack: protoactor logged it at info without one, so a
// protocol's bug showed in the node's logs only once it was stopped for good (an audit's finding).
func TestAProtocolActorsPanicIsLoggedWithItsStack(t *testing.T) {
	var logs testkit.SyncBuffer
	nw := testkit.NewNetwork(t, 2, testkit.WithLogger(zerolog.New(&logs)), testkit.WithLogLevel(zerolog.WarnLevel),
		testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "buggy/1", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actors.Inbound); ok {
			panic("a bug in the protocol")
		}
	}))
	if _, err := a.Request(context.Background(), b.ID(), "buggy/1", wrapperspb.String("x")); err == nil {
		t.Fatal("a request the actor panicked on succeeded")
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "protocol actor panicked") },
		"the panic logged")
	line := logs.String()
	if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, `"protocol":"buggy/1"`) ||
		!strings.Contains(line, "a bug in the protocol") || !strings.Contains(line, "protocolactor_test.go") {
		t.Fatalf("the panic's log: %s", line)
	}
}

// A panicking protocol actor is restarted Config.ProtocolRestarts times within ProtocolRestartWindow, then stopped
// and its protocol unregistered: with ProtocolRestarts 2, it still serves after two panics, and the third stops it
// (a messages.ProtocolStopped event; its requests then get ErrUnknownProtocol). One peer's bad messages thus cost
// the protocol for every peer only past that budget.
func TestAProtocolIsStoppedAfterProtocolRestartsPanics(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ProtocolRestarts, cfg.ProtocolRestartWindow = 2, time.Minute
	}))
	nw.Connect(0, 1)
	client, server := nw.Nodes[0], nw.Nodes[1]
	stopped := protocolStops(t, server)
	err := server.RegisterFunc("fragile/1", func(in *actors.Inbound) {
		if _, ok := in.Payload.(*wrapperspb.Int32Value); ok {
			panic("the handler cannot take an Int32Value")
		}
		_ = in.Reply(wrapperspb.String("served"))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	panics := func(n int) {
		t.Helper()
		for range n {
			if _, err := client.Request(ctx, server.ID(), "fragile/1", wrapperspb.Int32(1)); !errors.Is(err, actors.ErrRemote) {
				t.Fatalf("a request the actor panicked on: %v, want ErrRemote", err)
			}
		}
	}
	panics(2)
	if _, err := client.Request(ctx, server.ID(), "fragile/1", wrapperspb.String("x")); err != nil {
		t.Fatalf("a request after 2 panics, within ProtocolRestarts (2): %v, want it served", err)
	}
	select {
	case p := <-stopped:
		t.Fatalf("ProtocolStopped for %q after 2 panics, within ProtocolRestarts (2)", p)
	default:
	}
	panics(1)
	select {
	case p := <-stopped:
		if p != "fragile/1" {
			t.Fatalf("ProtocolStopped for %q, want fragile/1", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ProtocolStopped event after 3 panics, past ProtocolRestarts (2)")
	}
	if _, err := client.Request(ctx, server.ID(), "fragile/1", wrapperspb.String("x")); !errors.Is(err, actors.ErrUnknownProtocol) {
		t.Fatalf("a request to the stopped protocol: %v, want ErrUnknownProtocol", err)
	}
}
