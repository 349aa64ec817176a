package actors_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func inboundPeers(n *actors.Node) (ids []string) {
	for _, p := range n.Peers() {
		if !p.Outbound {
			ids = append(ids, p.ID.Short())
		}
	}
	return ids
}

// A node whose inbound slots are full of connections their dialers declared transient makes room for a new one by
// closing the least recently active; connections dialed to be kept are never closed for that.
func TestFullInboundSlotsEvictIdleTransientConnections(t *testing.T) {
	for _, keep := range []bool{false, true} {
		nw := testkit.NewNetwork(t, 4, testkit.WithConfig(func(i int, cfg *actors.Config) {
			if i == 0 {
				cfg.MaxInboundPeers = 2
			}
			cfg.DisableDiscovery = true // no discovery traffic: the connections stay idle
		}))
		a := nw.Nodes[0]
		for _, i := range []int{1, 2} {
			if err := nw.Nodes[i].Connect(ctxTimeout(t, 5*time.Second), a.Addr(), keep); err != nil {
				t.Fatal(err)
			}
		}
		testkit.WaitFor(t, 5*time.Second, func() bool { return len(inboundPeers(a)) == 2 }, "two inbound peers")
		// A fresh connection is protected for a moment; then a newcomer finds room when the others are transient.
		late := nw.Nodes[3]
		err := testkit.Poll(context.Background(), 3*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return late.Connect(ctx, a.Addr(), false) == nil && late.Connected(a.ID()) && a.Connected(late.ID())
		})
		if keep {
			if err == nil {
				t.Fatalf("a kept connection was closed to make room; inbound now %v", inboundPeers(a))
			}
			if got := inboundPeers(a); len(got) != 2 || a.Connected(late.ID()) {
				t.Fatalf("inbound peers %v", got)
			}
		} else {
			if err != nil {
				t.Fatalf("no room made for a newcomer among idle transient connections: inbound %v", inboundPeers(a))
			}
			if got := inboundPeers(a); len(got) != 2 {
				t.Fatalf("inbound peers %v, want 2 (the limit)", got)
			}
		}
		nw.Close()
	}
}

// A connection dialed only by discovery (a lookup's request) closes once idle for DiscoveryIdleTimeout; one the
// application dialed with a Send waits TransientIdleTimeout, although it has been idle longer.
func TestDiscoveryConnectionsCloseBeforeTheApplications(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		switch i {
		case 0:
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout = 200*time.Millisecond, time.Minute
		case 1:
			cfg.DisableDiscovery = true // a's table does not learn b, so a's lookup asks c alone
		}
	}))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	ctx := ctxTimeout(t, 20*time.Second)
	a.AddAddress(b.ID(), b.Addr().Addr)
	if err := a.Send(ctx, b.ID(), "nobody/1", wrapperspb.String("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindClosestFrom(ctx, routing.KeyOf(c.ID()), []session.PeerAddr{c.Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return !a.Connected(c.ID()) }); err != nil {
		t.Fatal("the lookup's connection to c stayed open")
	}
	if !a.Connected(b.ID()) {
		t.Fatal("the Send's connection to b closed as early as the lookup's")
	}
	if !a.TransientOutbound(b.ID()) {
		t.Fatal("the Send's connection to b is not transient: the test proves nothing")
	}
}

// With no transient connection left a node sweeps only every TransientIdleTimeout/2 (here 30s); a connection
// registered then brings the sweep forward, so a second lookup's connection also closes after
// DiscoveryIdleTimeout, not at the slow sweep.
func TestADiscoveryConnectionAfterAQuietSpellClosesSoon(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout = 200*time.Millisecond, time.Minute
		}
	}))
	a, c := nw.Nodes[0], nw.Nodes[1]
	ctx := ctxTimeout(t, 30*time.Second)
	for i := range 2 {
		// The sweep that closes the first lookup's connection finds no other transient one: it arms the slow
		// sweep, which the second lookup's connection must bring forward.
		if _, err := a.FindClosestFrom(ctx, routing.KeyOf(c.ID()), []session.PeerAddr{c.Addr()}); err != nil {
			t.Fatal(err)
		}
		if a.Connected(c.ID()) && !a.TransientOutbound(c.ID()) {
			t.Fatal("the lookup's connection is kept: the test proves nothing")
		}
		if err := testkit.Poll(ctx, 10*time.Second, func() bool { return !a.Connected(c.ID()) }); err != nil {
			t.Fatalf("lookup %d: its connection stayed open", i+1)
		}
	}
}

func TestConfigRejectsANonPositiveDiscoveryIdleTimeout(t *testing.T) {
	cfg := actors.DefaultConfig()
	if cfg.DiscoveryIdleTimeout <= 0 || cfg.DiscoveryIdleTimeout >= cfg.TransientIdleTimeout {
		t.Fatalf("default DiscoveryIdleTimeout %v: want positive and below TransientIdleTimeout %v",
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout)
	}
	cfg.DiscoveryIdleTimeout = 0
	err := cfg.Validate()
	if !errors.Is(err, actors.ErrInvalidConfig) || !strings.Contains(err.Error(), "DiscoveryIdleTimeout") {
		t.Fatalf("Validate with DiscoveryIdleTimeout 0: %v, want ErrInvalidConfig naming the field", err)
	}
}

// A node does not close an inbound transient connection as idle while it owes the peer a reply: a slow handler's
// answer still reaches the requester. Once answered, the connection closes as idle again.
func TestAConnectionOwingAReplyIsNotClosedAsIdle(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true // no discovery traffic: the connections stay idle
		if i == 0 {
			cfg.TransientIdleTimeout = 300 * time.Millisecond
		} else {
			cfg.TransientIdleTimeout = time.Minute // the requesters leave the closing to the responder
		}
	}))
	b, slowPeer, quickPeer := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	held := make(chan *actors.Inbound, 1)
	register(t, b, "slow/1", actor.PropsFromFunc(func(ctx actor.Context) {
		m, ok := ctx.Message().(*actors.Inbound)
		if !ok {
			return
		}
		if m.From == slowPeer.ID() {
			held <- m // answered by the test, later
			return
		}
		_ = m.Reply(wrapperspb.String("quick"))
	}))
	ctx := ctxTimeout(t, 30*time.Second)
	slowPeer.AddAddress(b.ID(), b.Addr().Addr)
	quickPeer.AddAddress(b.ID(), b.Addr().Addr)
	answer := make(chan error, 1)
	go func() {
		reply, err := slowPeer.Request(ctx, b.ID(), "slow/1", wrapperspb.String("take your time"))
		if err == nil && reply.(*wrapperspb.StringValue).GetValue() != "slow" {
			err = errors.New("wrong reply")
		}
		answer <- err
	}()
	var m *actors.Inbound
	select {
	case m = <-held:
	case <-ctx.Done():
		t.Fatal("the slow request never reached the handler")
	}
	// The quick peer's connection goes idle after the slow one's: once b closed it, it would have closed the slow
	// one too, were it not owed a reply.
	if _, err := quickPeer.Request(ctx, b.ID(), "slow/1", wrapperspb.String("now")); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return !b.Connected(quickPeer.ID()) }); err != nil {
		t.Fatal("b never closed the answered, idle connection: the test proves nothing")
	}
	if !b.Connected(slowPeer.ID()) {
		t.Fatal("b closed the connection on which it owes a reply")
	}
	if err := m.Reply(wrapperspb.String("slow")); err != nil {
		t.Fatal(err)
	}
	if err := <-answer; err != nil {
		t.Fatalf("the slow reply was lost: %v", err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return !b.Connected(slowPeer.ID()) }); err != nil {
		t.Fatal("the connection stayed open after its reply, idle")
	}
}

// The idle sweep closes a transient connection with reason NOT_NEEDED, and the peer's event says so: with
// REQUESTED, which Node.Disconnect says, the peer could not tell a routine close from a peer that wants to be left
// alone.
func TestTheIdleSweepSaysNotNeeded(t *testing.T) {
	const idle = 200 * time.Millisecond
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i == 0 {
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout = idle, idle
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	events := watchEvents(t, b)
	ctx := ctxTimeout(t, 20*time.Second)
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool { return events.disconnects(a.ID()) > 0 }); err != nil {
		t.Fatal("a's sweep never closed the idle transient connection")
	}
	if got := events.disconnectReasons(a.ID()); len(got) != 1 || !strings.HasPrefix(got[0], messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED.String()+":") {
		t.Fatalf("b's disconnect events from a: %v, want one %s", got, messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED)
	}
	notNeeded := messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED.String()
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Stats().Disconnects[notNeeded] == 1 && b.Stats().Disconnects[notNeeded] == 1 },
		"both sides count the close as NOT_NEEDED")
}
