package actors_test

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// Ordinary mistakes of an application get a clear error rather than a panic, a hang or a wrong error (an audit of
// the public API): a zero Identity made NewNode panic, a second Start's error could not be matched, Publish(nil)
// was not ErrBadPayload as Send(nil) is, SubscribeEvents(nil) made every event panic, and Connect dialed an empty
// address.
func TestAPIMisuseGetsClearErrors(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.Identity = &session.Identity{}
	if _, err := actors.NewNode(cfg); !errors.Is(err, actors.ErrInvalidConfig) {
		t.Fatalf("NewNode with a zero Identity: %v, want ErrInvalidConfig", err)
	}
	n := testkit.NewNetwork(t, 1).Nodes[0]
	if err := n.Start(context.Background()); !errors.Is(err, actors.ErrAlreadyStarted) {
		t.Fatalf("a second Start: %v, want ErrAlreadyStarted", err)
	}
	if _, err := n.Publish(ctxTimeout(t, time.Second), "t", nil); !errors.Is(err, actors.ErrBadPayload) {
		t.Fatalf("Publish(nil): %v, want ErrBadPayload", err)
	}
	if _, err := n.SubscribeEvents(nil); err == nil {
		t.Fatal("SubscribeEvents(nil) accepted")
	}
	peer, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Connect(ctxTimeout(t, time.Second), session.PeerAddr{ID: peer.NodeID()}, true); !errors.Is(err, session.ErrBadPeerAddr) {
		t.Fatalf("Connect to an empty address: %v, want ErrBadPeerAddr", err)
	}
}

// Send and Request refuse an empty protocol id (no node can serve it: Send returned nil and the peer dropped the
// message) and a nil message before they dial: Send(nil) to a peer with a known address opened a connection, then
// failed.
func TestSendAndRequestRefuseImpossibleArgumentsBeforeDialing(t *testing.T) {
	nw := testkit.NewNetwork(t, 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	if err := a.AddAddress(b.ID(), b.Addr().Addr); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	if err := a.Send(ctx, b.ID(), "", wrapperspb.String("x")); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("Send to an empty protocol: %v, want ErrInvalidArgument", err)
	}
	if _, err := a.Request(ctx, b.ID(), "", wrapperspb.String("x")); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("Request to an empty protocol: %v, want ErrInvalidArgument", err)
	}
	// A protocol id over MaxProtocolIDLength: peers' refusals and window updates repeat it.
	long := strings.Repeat("p", actors.MaxProtocolIDLength+1)
	if err := a.Send(ctx, b.ID(), long, wrapperspb.String("x")); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("Send to a %d-byte protocol id: %v, want ErrInvalidArgument", len(long), err)
	}
	if _, err := a.Request(ctx, b.ID(), long, wrapperspb.String("x")); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("Request to a %d-byte protocol id: %v, want ErrInvalidArgument", len(long), err)
	}
	if _, err := b.Register(long, echo()); !errors.Is(err, actors.ErrInvalidArgument) {
		t.Errorf("Register of a %d-byte protocol id: %v, want ErrInvalidArgument", len(long), err)
	}
	if err := a.Send(ctx, b.ID(), "echo/1", nil); !errors.Is(err, actors.ErrBadPayload) {
		t.Errorf("Send(nil): %v, want ErrBadPayload", err)
	}
	if _, err := a.Request(ctx, b.ID(), "echo/1", nil); !errors.Is(err, actors.ErrBadPayload) {
		t.Errorf("Request(nil): %v, want ErrBadPayload", err)
	}
	if a.Connected(b.ID()) {
		t.Error("a call refused for its arguments dialed the peer")
	}
}

// Configs that pass Validate work, and the errors of those that do not can be matched: a MaxMessageSize of 2000
// passed and left gossip a 1-byte limit (every Publish failed), a bootnode without an id passed and the node only
// logged that it could not join, and a component's own sentinel (gossip.ErrInvalidConfig) was lost in the text.
// Register's and SubscribeEvents' impossible arguments wrap ErrInvalidArgument, Subscribe's nil handler
// gossip.ErrNilHandler.
func TestInvalidConfigsAndArgumentsAreRefusedWithSentinels(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*actors.Config)
		also   error
	}{
		"tiny MaxMessageSize": {func(c *actors.Config) { c.MaxMessageSize = 2000 }, nil},
		"bootnode without id": {func(c *actors.Config) {
			c.Bootstrap.Bootnodes = []session.PeerAddr{{Addr: "127.0.0.1:30700"}}
		}, session.ErrBadPeerAddr},
		"gossip config":               {func(c *actors.Config) { c.Gossip.PenaltyBan = 0 }, gossip.ErrInvalidConfig},
		"topic registrations lapsing": {func(c *actors.Config) { c.Gossip.Router.TopicRegisterInterval = c.Routing.TopicTTL }, nil},
		"advertised unspecified host": {func(c *actors.Config) { c.AdvertiseAddr = "0.0.0.0:30700" }, nil},
		"advertised unspecified ipv6": {func(c *actors.Config) { c.AdvertiseAddr = "[::]:30700" }, nil},
		"advertised port 0":           {func(c *actors.Config) { c.AdvertiseAddr = "192.0.2.2:0" }, nil},
		"negative eviction grace":     {func(c *actors.Config) { c.InboundEvictionGrace = -time.Second }, nil},
		"network id too long":         {func(c *actors.Config) { c.NetworkID = strings.Repeat("n", 70000) }, nil},
		// a ping every nanosecond flooded every quiet connection
		"tiny ping interval": {func(c *actors.Config) { c.PingInterval = time.Nanosecond }, nil},
		// 3 x the interval overflowed, and passed
		"registrations of never": {func(c *actors.Config) { c.Gossip.Router.TopicRegisterInterval = 1 << 62 }, nil},
		"two peer stores": {func(c *actors.Config) {
			c.Routing.StorePath, c.Bootstrap.StorePath = "/tmp/a/peers.pb", "/tmp/b/peers.pb"
		}, nil},
		// the handshake refused it, at every connection
		"message size over 4 bytes": {func(c *actors.Config) {
			c.MaxMessageSize, c.SendQueueBytes, c.InboundPendingBytes = 1<<33, 1<<34, 1<<34
		}, nil},
		// the control allowance overflowed it, and the first pong disconnected the peer
		"queue of math.MaxInt":    {func(c *actors.Config) { c.SendQueueBytes = math.MaxInt }, nil},
		"advertised without host": {func(c *actors.Config) { c.AdvertiseAddr = ":30700" }, nil},
		"a protocol id too long": {func(c *actors.Config) {
			c.Protocols = []actors.Protocol{{ID: strings.Repeat("p", actors.MaxProtocolIDLength+1), Props: echo()}}
		}, actors.ErrInvalidArgument},
		// an error reply's protocol, clipped of it, no longer matched the id (a review's finding)
		"a protocol id with a control character": {func(c *actors.Config) {
			c.Protocols = []actors.Protocol{{ID: "tab\tproto/1", Props: echo()}}
		}, actors.ErrInvalidArgument},
		// one connection was kept all the same, at either address
		"a peer listed twice": {func(c *actors.Config) {
			id, _ := session.GenerateIdentity()
			c.Peers = []session.PeerAddr{{ID: id.NodeID(), Addr: "127.0.0.1:1"}, {ID: id.NodeID(), Addr: "127.0.0.1:2"}}
		}, nil},
	} {
		cfg := actors.DefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, actors.ErrInvalidConfig) || tc.also != nil && !errors.Is(err, tc.also) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig (and %v)", name, err, tc.also)
		}
	}
	cfg := actors.DefaultConfig()
	cfg.MaxMessageSize = actors.MinMessageSize
	if err := cfg.Validate(); err != nil {
		t.Errorf("MaxMessageSize = MinMessageSize: %v", err)
	}

	n := testkit.NewNetwork(t, 1).Nodes[0]
	props := actor.PropsFromFunc(func(actor.Context) {})
	for name, call := range map[string]func() error{
		"Register with an empty id":         func() error { _, err := n.Register("", props); return err },
		"Register with a non-UTF-8 id":      func() error { _, err := n.Register("\xff", props); return err },
		"Register with nil props":           func() error { _, err := n.Register("x/1", nil); return err },
		"Register with a control character": func() error { _, err := n.Register("tab\tproto/1", props); return err },
		"Send with a control character": func() error {
			return n.Send(ctxTimeout(t, time.Second), newIdentity(t).NodeID(), "tab\tproto/1", wrapperspb.String("x"))
		},
		"SubscribeEvents(nil)":      func() error { _, err := n.SubscribeEvents(nil); return err },
		"Ban for 0":                 func() error { return n.Ban(newIdentity(t).NodeID(), 0, "x") },
		"BanIP for -1s":             func() error { return n.BanIP(netip.MustParseAddr("10.0.0.1"), -time.Second, "x") },
		"BanIP of the zero address": func() error { return n.BanIP(netip.Addr{}, time.Minute, "x") },
	} {
		if err := call(); !errors.Is(err, actors.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := n.Subscribe(ctxTimeout(t, time.Second), "t", nil); !errors.Is(err, gossip.ErrNilHandler) {
		t.Errorf("Subscribe with a nil handler: %v, want gossip.ErrNilHandler", err)
	}
}

// ReplyError(nil) answers with an application error without text: it panicked the protocol actor, and the
// requester waited for its timeout.
func TestReplyErrorWithANilError(t *testing.T) {
	nw := testkit.NewNetwork(t, 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "nil/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			_ = in.ReplyError(nil)
		}
	}))
	nw.Connect(0, 1)
	_, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "nil/1", wrapperspb.String("x"))
	var re *actors.RemoteError
	if !errors.As(err, &re) || re.Message != "" {
		t.Fatalf("request answered with ReplyError(nil): %v, want a RemoteError without text", err)
	}
	if n := b.Stats().ActorRestarts; n != 0 {
		t.Fatalf("%d actor restarts, want none", n)
	}
}

// ActorSystem may be called while Start runs (all of the node's methods are safe for concurrent use): it read the
// field Start writes without the lock.
func TestActorSystemDuringStart(t *testing.T) {
	n := unstartedNode(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			_ = n.ActorSystem()
		}
	}()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n.ActorSystem() == nil {
		t.Fatal("no actor system after Start")
	}
}

// A node whose own address is among its peers or bootnodes (a configuration shared by every node of a network)
// leaves it out: it dialed itself for good, and a bootnode retried its join every 2 s, logging itself unreachable.
func TestANodeLeavesItselfOutOfItsPeersAndBootnodes(t *testing.T) {
	self, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	me := session.PeerAddr{ID: self.NodeID(), Addr: "127.0.0.1:30700"}
	them := session.PeerAddr{ID: other.NodeID(), Addr: "127.0.0.1:30701"}
	cfg := actors.DefaultConfig()
	cfg.Identity = self
	cfg.Peers = []session.PeerAddr{me, them}
	cfg.Bootstrap.Bootnodes = []session.PeerAddr{them, me}
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	peers, bootnodes := n.DialLists()
	if !slices.Equal(peers, []session.PeerAddr{them}) || !slices.Equal(bootnodes, []session.PeerAddr{them}) {
		t.Fatalf("peers %v, bootnodes %v: want only %v in each", peers, bootnodes, them)
	}
	if cfg.Peers[0] != me || cfg.Bootstrap.Bootnodes[1] != me {
		t.Fatal("NewNode changed the caller's slices")
	}
}

// A component's bad field is named in the error, and a NaN rate is refused: "NaN <= 0" is false, so a NaN
// Gossip.PeerMessageRate or Routing.RequestRate passed and turned the per-peer rate limit off; and one bad field
// of the gossip, routing or bootstrap config was reported as a list of a dozen names.
func TestABadComponentFieldIsNamedAndNaNRatesAreRefused(t *testing.T) {
	nan := math.NaN()
	for want, change := range map[string]func(*actors.Config){
		"PeerMessageRate must be positive, got NaN":    func(c *actors.Config) { c.Gossip.PeerMessageRate = nan },
		"RequestRate must be positive, got NaN":        func(c *actors.Config) { c.Routing.RequestRate = nan },
		"CheckRate must be positive, got +Inf":         func(c *actors.Config) { c.Routing.CheckRate = math.Inf(1) },
		"TreeShortcutShare in (0, 1]":                  func(c *actors.Config) { c.Gossip.Router.TreeShortcutShare = nan },
		"CacheMaxBytes must be positive, got 0":        func(c *actors.Config) { c.Gossip.Router.CacheMaxBytes = 0 },
		"ValidationTimeout must be positive, got 0s":   func(c *actors.Config) { c.Gossip.Router.ValidationTimeout = 0 },
		"MaxLookups must be positive, got 0":           func(c *actors.Config) { c.Routing.MaxLookups = 0 },
		"StepTimeout must be positive, got -1s":        func(c *actors.Config) { c.Bootstrap.StepTimeout = -time.Second },
		"DeliveryBufferBytes must be positive, got -1": func(c *actors.Config) { c.Gossip.DeliveryBufferBytes = -1 },
	} {
		cfg := actors.DefaultConfig()
		change(&cfg)
		if err := cfg.Validate(); !errors.Is(err, actors.ErrInvalidConfig) || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want ErrInvalidConfig saying %q", err, want)
		}
	}
}

// Register on a node closed before it was ever started fails with ErrClosed, as every other call does (it said
// ErrNotStarted).
func TestRegisterOnANodeClosedBeforeItStartedIsErrClosed(t *testing.T) {
	n := unstartedNode(t)
	if _, err := n.Register("x/1", echo()); !errors.Is(err, actors.ErrNotStarted) {
		t.Fatalf("Register before Start: %v, want ErrNotStarted", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Register("x/1", echo()); !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Register after Close of a node never started: %v, want ErrClosed", err)
	}
}
