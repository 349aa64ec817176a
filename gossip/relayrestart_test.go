package gossip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// failingNetwork is a flakyNetwork with bugs that panic the relay actor, which its supervisor then restarts:
// GossipPeers panics once when beatFails is set (on a heartbeat), and Sign panics once when signFails is set (on a
// Publish). It counts the calls of GossipPeers (one per heartbeat, and one as an instance starts) and the
// peer-event subscriptions, those made and those not ended.
type failingNetwork struct {
	flakyNetwork
	beatFails, signFails atomic.Bool
	sendFails            atomic.Bool // SendNow panics once
	beats                atomic.Int64
	subscribed, events   atomic.Int32
}

func (f *failingNetwork) Sign([]byte) []byte {
	if f.signFails.CompareAndSwap(true, false) {
		panic("signer bug")
	}
	return make([]byte, 64)
}

func (f *failingNetwork) SendNow(peer session.NodeID, protocol string, msg proto.Message, priority bool) error {
	if f.sendFails.CompareAndSwap(true, false) {
		panic("sender bug")
	}
	return f.flakyNetwork.SendNow(peer, protocol, msg, priority)
}

func (f *failingNetwork) GossipPeers() []session.NodeID {
	if f.beatFails.CompareAndSwap(true, false) {
		panic("peer list bug")
	}
	f.beats.Add(1)
	return f.flakyNetwork.GossipPeers()
}

func (f *failingNetwork) SubscribeEvents(func(proto.Message)) (func(), error) {
	f.subscribed.Add(1)
	f.events.Add(1)
	var once sync.Once
	return func() { once.Do(func() { f.events.Add(-1) }) }, nil
}

// peerRPC is an RPC from a peer, as the node hands it to the relay.
type peerRPC struct {
	from session.NodeID
	rpc  *messages.GossipRPC
}

func (p peerRPC) Sender() session.NodeID { return p.from }
func (p peerRPC) Message() proto.Message { return p.rpc }

// spawnSupervisedRelay starts a relay actor under a parent that restarts it after a panic, up to restarts times in
// a minute, then stops it, as a node's guardian does. All is stopped when the test ends; goroutines left then
// fail the test.
func spawnSupervisedRelay(t *testing.T, cfg RelayConfig, net Network, restarts int) *Relay {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // the last cleanup: after the actor system's shutdown
	props, stopped, err := NewRelayProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	// The dead-letter throttle runs a goroutine for its interval (1s by default), which goleak must not catch.
	system := actor.NewActorSystem(actor.WithDeadLetterThrottleInterval(10 * time.Millisecond))
	t.Cleanup(system.Shutdown)
	pids := make(chan *actor.PID, 1)
	parent := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			pids <- ctx.Spawn(props)
		}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(restarts, time.Minute, actor.DefaultDecider))))
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		_ = system.Root.StopFuture(parent).Wait()
	})
	return NewRelay(system.Root, <-pids, stopped, done, nil)
}

// promptly returns what f returns, failing the test if f has not returned within 5s: a call that hangs must not
// hang the test.
func promptly(t *testing.T, what string, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s has not returned after 5s", what)
		return nil
	}
}

// pollUntil polls cond until it holds, failing t with what once ctx ends.
func pollUntil(t *testing.T, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	if poll.Wait(ctx, time.Hour, cond) != nil { // ctx bounds the wait
		t.Fatal(what)
	}
}

// A panic restarts the relay actor, and protoactor replaces the instance without delivering Stopping to it. The
// instance must still end its heartbeat timer and its peer-event subscription: they ran on, one more heartbeat per
// interval with each restart (the Router's clocks, counted in heartbeats, ran as many times too fast). And the
// local subscriptions must carry on in the next instance: they were dropped silently (no more deliveries, the
// topic no longer joined), their handlers' goroutines left running.
func TestRelayRestartKeepsItsSubscriptionsAndOneHeartbeat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := &failingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	cfg := DefaultRelayConfig()
	interval := 20 * time.Millisecond
	cfg.Router.HeartbeatInterval, cfg.Router.GossipDelay = interval, 10*time.Millisecond
	const restarts = 3
	relay := spawnSupervisedRelay(t, cfg, net, restarts)

	var got [3]chan string
	for i := range got {
		got[i] = make(chan string, 16)
		if _, err := relay.Subscribe(ctx, "blocks", func(d *Delivery) { got[i] <- string(d.Data) }); err != nil {
			t.Fatal(err)
		}
	}
	// delivered publishes data and checks that every subscription gets it. Peer 2 first says it subscribes to the
	// topic, as it does in answer to each instance's hello, so that the publication has somewhere to go.
	delivered := func(data string) {
		t.Helper()
		relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
			Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
		if _, err := relay.Publish(ctx, "blocks", []byte(data)); err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
		for i, ch := range got {
			select {
			case d := <-ch:
				if d != data {
					t.Fatalf("subscription %d got %q, want %q", i, d, data)
				}
			case <-ctx.Done():
				t.Fatalf("subscription %d never got %q", i, data)
			}
		}
	}
	delivered("before")

	for i := range restarts {
		net.beatFails.Store(true) // the next heartbeat panics
		pollUntil(t, ctx, func() bool { return net.subscribed.Load() == int32(i+2) }, "the relay did not restart")
	}
	info, err := relay.Topic(ctx, "blocks") // served by the last instance, started
	if err != nil || !info.Joined {
		t.Fatalf("after %d restarts: topic joined %v (%v), want true", restarts, info.Joined, err)
	}
	if n := net.events.Load(); n != 1 {
		t.Fatalf("after %d restarts: %d peer-event subscriptions, want 1", restarts, n)
	}
	// One heartbeat timer: n heartbeats take n-1 intervals at least (each arms the next). With the timer of each
	// instance restarted left running, they came restarts+1 times as fast.
	const n = 12
	from, start := net.beats.Load(), time.Now()
	pollUntil(t, ctx, func() bool { return net.beats.Load() >= from+n }, "the heartbeats stopped")
	if took, least := time.Since(start), (n-1)*interval; took < least {
		t.Fatalf("after %d restarts: %d heartbeats in %v, want %v at least (one per %v)", restarts, n, took, least, interval)
	}
	delivered("after")
	// The cleanups check that the subscriptions' handlers end when the relay stops.
}

// The request the relay actor panics on is answered with ErrRelayFailed, whether its supervisor restarts the actor
// or stops it; and once it is stopped for good, every call fails at once with ErrRelayStopped. Both used to wait
// for their context: forever with context.Background().
func TestRelayCallsFailWhenTheRelayFailsOrStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := &failingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	relay := spawnSupervisedRelay(t, DefaultRelayConfig(), net, 1)
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	publish := func(data string) error {
		return promptly(t, "Publish "+data, func() error {
			_, err := relay.Publish(context.Background(), "blocks", []byte(data))
			return err
		})
	}

	net.signFails.Store(true)
	if err := publish("restarts"); !errors.Is(err, ErrRelayFailed) {
		t.Fatalf("Publish the relay panicked on (restarted): %v, want ErrRelayFailed", err)
	}
	if _, err := relay.Stats(ctx); err != nil {
		t.Fatalf("Stats after the restart: %v", err)
	}
	net.signFails.Store(true)
	if err := publish("stops"); !errors.Is(err, ErrRelayFailed) {
		t.Fatalf("Publish the relay panicked on (stopped for good): %v, want ErrRelayFailed", err)
	}

	if err := publish("late"); !errors.Is(err, ErrRelayStopped) {
		t.Fatalf("Publish after the relay stopped: %v, want ErrRelayStopped", err)
	}
	calls := map[string]func() error{
		"Subscribe": func() error {
			_, err := relay.Subscribe(context.Background(), "blocks", func(*Delivery) {})
			return err
		},
		"Stats": func() error {
			_, err := relay.Stats(context.Background())
			return err
		},
		"Topic": func() error {
			_, err := relay.Topic(context.Background(), "blocks")
			return err
		},
	}
	for name, call := range calls {
		if err := promptly(t, name, call); !errors.Is(err, ErrRelayStopped) {
			t.Fatalf("%s after the relay stopped: %v, want ErrRelayStopped", name, err)
		}
	}
	if n := net.events.Load(); n != 0 {
		t.Fatalf("%d peer-event subscriptions left after the relay stopped", n)
	}
	// The cleanups check that the subscription's handler ended with the relay.
}

// A restarted relay starts from the message ids its failed incarnation had seen: a message its subscriptions got
// before the restart, coming again after it (a late push, an answer to an IWANT), is not delivered a second time.
// It was, as the new incarnation's seen-cache started empty.
func TestRelayRestartDeliversNoMessageTwice(t *testing.T) {
	ctx, net, relay := restartingRelay(t, 1, func(cfg *RelayConfig) { cfg.VerifySignatures = false })
	got := make(chan string, 16)
	if _, err := relay.Subscribe(ctx, "blocks", func(d *Delivery) { got <- string(d.Data) }); err != nil {
		t.Fatal(err)
	}
	push := func(data string) {
		relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
			Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}},
			Messages: []*messages.GossipMessage{{Topic: "blocks", Data: []byte(data), Origin: nid(3).Bytes(), Seq: 1,
				OriginTime: time.Now().UnixNano()}},
		}})
	}
	next := func() string {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-ctx.Done():
			t.Fatal("no delivery")
			return ""
		}
	}
	push("first")
	if d := next(); d != "first" {
		t.Fatalf("got %q, want first", d)
	}
	net.beatFails.Store(true) // the next heartbeat panics
	pollUntil(t, ctx, func() bool { return net.subscribed.Load() == 2 }, "the relay did not restart")
	push("first")
	push("second")
	if d := next(); d != "second" {
		t.Fatalf("after the restart got %q, want second (first was delivered before it)", d)
	}
}

// A publication waiting for the topic's validator when the relay actor restarts is answered with ErrRelayFailed:
// the restart ends the validator's context, and its verdict goes to the next instance, which did not ask for it.
func TestAPublicationBeingValidatedFailsWhenTheRelayRestarts(t *testing.T) {
	ctx, net, relay := restartingRelay(t, 3, nil)
	entered := make(chan struct{}, 1)
	validator := func(ctx context.Context, _ *Delivery) Verdict { // decides nothing until its context ends
		entered <- struct{}{}
		<-ctx.Done()
		return Ignore
	}
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}, WithValidator(validator)); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() {
		_, err := relay.Publish(ctx, "blocks", []byte("block"))
		published <- err
	}()
	<-entered
	net.beatFails.Store(true) // the next heartbeat panics
	if err := promptly(t, "Publish", func() error { return <-published }); !errors.Is(err, ErrRelayFailed) {
		t.Fatalf("Publish validated across a restart: %v, want ErrRelayFailed", err)
	}
}

// A panic while the relay publishes a publication its validators accepted answers that publication with
// ErrRelayFailed, as for any request the relay panics on: it waited for its context.
func TestAPanicPublishingAValidatedPublicationAnswersIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := &failingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	relay := spawnSupervisedRelay(t, DefaultRelayConfig(), net, 3)
	accept := func(context.Context, *Delivery) Verdict { return Accept }
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}, WithValidator(accept)); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	pollUntil(t, ctx, func() bool {
		info, err := relay.Topic(ctx, "blocks")
		return err == nil && len(info.Peers) == 1
	}, "peer 2 never joined the topic")
	net.sendFails.Store(true) // the publication's push to peer 2 panics
	err := promptly(t, "Publish", func() error { _, err := relay.Publish(ctx, "blocks", []byte("block")); return err })
	if !errors.Is(err, ErrRelayFailed) {
		t.Fatalf("Publish whose push panicked: %v, want ErrRelayFailed", err)
	}
}

// The relay's figures go on across its restarts: its counters are exported as Prometheus counters, which must never
// go down, and RelayStats went back to zero with each new incarnation (its Router's counters, its own, its
// histograms).
func TestRelayFiguresSurviveARestart(t *testing.T) {
	ctx, net, relay := restartingRelay(t, 3, nil)
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	for _, d := range []string{"a", "b", "c"} {
		if _, err := relay.Publish(ctx, "blocks", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := relay.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	net.beatFails.Store(true)
	pollUntil(t, ctx, func() bool { return net.subscribed.Load() == 2 }, "the relay's restart")
	after, err := relay.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Router.Published != 3 || after.Router.Published < before.Router.Published ||
		after.Router.Delivered < before.Router.Delivered || after.Router.Heartbeats < before.Router.Heartbeats ||
		after.RPCsSent < before.RPCsSent || len(after.Delay.Bounds) == 0 {
		t.Fatalf("figures across a restart: published %d -> %d, delivered %d -> %d, heartbeats %d -> %d, RPCs sent %d -> %d",
			before.Router.Published, after.Router.Published, before.Router.Delivered, after.Router.Delivered,
			before.Router.Heartbeats, after.Router.Heartbeats, before.RPCsSent, after.RPCsSent)
	}
}

// restartingRelay spawns, under a supervisor that restarts it up to restarts times, a relay with a fast heartbeat on
// a network the test can make fail (failingNetwork), its config changed by change (nil: none); the context ends
// with the test, at the latest in 20 s.
func restartingRelay(t *testing.T, restarts int, change func(*RelayConfig)) (context.Context, *failingNetwork, *Relay) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	net := &failingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	cfg := DefaultRelayConfig()
	cfg.Router.HeartbeatInterval, cfg.Router.GossipDelay = 20*time.Millisecond, 10*time.Millisecond
	if change != nil {
		change(&cfg)
	}
	return ctx, net, spawnSupervisedRelay(t, cfg, net, restarts)
}

// A peer's way to its ban survives the relay's restart: its penalty before the restart counts with those after it
// (PenaltyThreshold 3: two rejections, a restart, one more bans it). A restart used to start every count again.
func TestAPeersPenaltySurvivesARestart(t *testing.T) {
	ctx, net, relay := restartingRelay(t, 3, func(c *RelayConfig) {
		c.VerifySignatures = false
		c.Router.PenaltyThreshold = 3
	})
	reject := func(context.Context, *Delivery) Verdict { return Reject }
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}, WithValidator(reject)); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	bad := func(i int) peerRPC {
		return peerRPC{from: nid(2), rpc: &messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: "blocks",
			Data: fmt.Appendf(nil, "bad%d", i), Origin: nid(2).Bytes(), Seq: uint64(i), OriginTime: time.Now().UnixNano()}}}}
	}
	stats := func() RelayStats {
		st, err := relay.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	relay.send(bad(1))
	relay.send(bad(2))
	pollUntil(t, ctx, func() bool { return stats().Router.Rejected == 2 }, "two rejections")
	net.beatFails.Store(true)
	pollUntil(t, ctx, func() bool { return net.subscribed.Load() == 2 }, "the relay's restart")
	relay.send(bad(3))
	pollUntil(t, ctx, func() bool { return stats().Router.Rejected == 3 }, "the third rejection")
	if st := stats(); st.Banned != 1 {
		t.Errorf("RelayStats.Banned %d after 3 rejections across a restart, want 1", st.Banned)
	}
}

// A restart does not refill the peers' message rates: a peer that spent its burst before it gets nothing more
// through after it.
func TestAPeersRateLimitSurvivesARestart(t *testing.T) {
	ctx, net, relay := restartingRelay(t, 3, func(c *RelayConfig) {
		c.VerifySignatures = false
		c.PeerMessageRate, c.PeerMessageBurst = 0.001, 3 // 3 messages (the hello draws on the control budget)
	})
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	send := func(i int) {
		relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: "blocks",
			Data: fmt.Appendf(nil, "m%d", i), Origin: nid(2).Bytes(), Seq: uint64(i), OriginTime: time.Now().UnixNano()}}}})
	}
	stats := func() RelayStats {
		st, err := relay.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for i := range 3 {
		send(i)
	}
	pollUntil(t, ctx, func() bool { return stats().Router.Delivered == 3 }, "three deliveries")
	net.beatFails.Store(true)
	pollUntil(t, ctx, func() bool { return net.subscribed.Load() == 2 }, "the relay's restart")
	send(3)
	pollUntil(t, ctx, func() bool { st := stats(); return st.RateLimited+st.Router.Delivered >= 4 }, "the fourth message handled")
	if st := stats(); st.RateLimited != 1 || st.Router.Delivered != 3 {
		t.Errorf("after a restart: RateLimited %d, delivered %d; want the fourth message refused (1, 3)", st.RateLimited, st.Router.Delivered)
	}
}
