package actors_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// cancelOnListen is a transport whose Listen ends the context the node's Start was given: the context ends while
// Start waits for its actor tree.
type cancelOnListen struct {
	session.TCPTransport
	cancel context.CancelFunc
}

func (t cancelOnListen) Listen(addr string) (net.Listener, error) {
	t.cancel()
	return t.TCPTransport.Listen(addr)
}

// A Start whose context ends while the actor tree starts fails with the context's error and leaves nothing
// running: its guardian used to spawn the node's actors after it was told to stop, so Start waited out protoactor's
// 10 s stop timeout, the relay's goroutine outlived Close, and the peer manager went on dialing Config.Peers.
func TestAStartWhoseContextEndsLeavesNothingRunning(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the peer of Config.Peers: takes connections and drops them
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	peer, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := actors.DefaultConfig()
	cfg.ListenAddr, cfg.DisableDiscovery = "127.0.0.1:0", true
	cfg.Transport = cancelOnListen{cancel: cancel}
	cfg.Peers = []session.PeerAddr{{ID: peer.NodeID(), Addr: ln.Addr().String()}}
	cfg.Protocols = []actors.Protocol{{ID: "echo/1", Props: echo()}}
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = n.Start(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a context that ended: %v, want context.Canceled", err)
	}
	if took > 5*time.Second {
		t.Errorf("Start took %v to fail: it waited out the actor tree's stop timeout", took)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_ = ln.Close()
	wg.Wait()
	if err := goleak.Find(before,
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1")); err != nil {
		t.Fatalf("goroutines left after the failed Start and Close: %v", err)
	}
}

// A node whose Start failed on its context can be started again, and then works.
func TestANodeStartsAgainAfterAStartThatFailed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := actors.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Transport = cancelOnListen{cancel: cancel}
	cfg.Protocols = []actors.Protocol{{ID: "echo/1", Props: echo()}}
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("first Start: %v, want context.Canceled", err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	other := testkit.NewNetwork(t, 1).Nodes[0]
	if err := other.Connect(ctxTimeout(t, 10*time.Second), n.Addr(), true); err != nil {
		t.Fatalf("connecting to the node started again: %v", err)
	}
	// Its discovery runs too: the routing actor the failed Start stopped left no mark.
	if _, err := n.RoutingTable(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("the routing table of the node started again: %v", err)
	}
	if err := n.Err(); err != nil {
		t.Fatalf("the node started again closed itself: %v", err)
	}
}

// Close during a Start that waits for its actor tree ends the Start with ErrClosed, and leaves nothing running.
// (Close used to wait for the Start, which held the node's lock until its context ended.)
func TestCloseDuringAStartEndsTheStart(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := actor.PropsFromProducer(func() actor.Actor { // the protocol supervisor builds it: the start waits
		close(entered)
		<-release
		return actor.ReceiveFunc(func(actor.Context) {})
	})
	cfg := actors.DefaultConfig()
	cfg.ListenAddr, cfg.DisableDiscovery = "127.0.0.1:0", true
	cfg.Protocols = []actors.Protocol{{ID: "slow/1", Props: slow}}
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- n.Start(context.Background()) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	<-n.Done()
	close(release)
	if err := <-started; !errors.Is(err, actors.ErrClosed) {
		t.Fatalf("Start during Close: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A bootstrapper target over the node's outbound slots is lowered to them: it was never reached, and every step
// dialed for more, each dial refused for want of a slot.
func TestATargetOverTheOutboundSlotsIsLoweredToThem(t *testing.T) {
	var logs testkit.SyncBuffer
	cfg := actors.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MaxOutboundPeers, cfg.Bootstrap.TargetOutbound = 2, 8
	cfg.Logger = zerolog.New(&logs)
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"target":8,"max_outbound":2`) {
		t.Fatalf("no word of the lowered target in the logs: %s", logs.String())
	}
}
