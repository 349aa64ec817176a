package gossip

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit/poll"
)

// ownValidationRelay starts a relay whose peer 2 is subscribed to topic t, and subscribes to t with validator;
// deliveries reach got.
func ownValidationRelay(t *testing.T, ctx context.Context, cfg RelayConfig, validator Validator) (*Relay, chan string) {
	t.Helper()
	relay := spawnRelay(t, cfg, &flakyNetwork{self: nid(1), peer: nid(2)})
	got := make(chan string, 8)
	if _, err := relay.Subscribe(ctx, "t", func(d *Delivery) { got <- string(d.Data) }, WithValidator(validator)); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "t", Subscribe: true}}}})
	return relay, got
}

// A validator that answers only after ValidationTimeout has its message ignored, as the Validator doc says, whatever
// it answers: the node's own publication fails with ErrIgnored. A late Accept used to publish it.
func TestALateValidatorVerdictIsIgnored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := DefaultRelayConfig()
	cfg.Router.ValidationTimeout = 50 * time.Millisecond
	relay, got := ownValidationRelay(t, ctx, cfg, func(vctx context.Context, _ *Delivery) Verdict {
		<-vctx.Done() // answers once its time is up
		return Accept
	})
	if _, err := relay.Publish(ctx, "t", []byte("late")); !errors.Is(err, ErrIgnored) {
		t.Fatalf("publish judged after the validation timeout: %v, want ErrIgnored", err)
	}
	select {
	case d := <-got:
		t.Fatalf("%q was delivered", d)
	default:
	}
}

// A peer's message whose validator honours its context, and so answers when ValidationTimeout ends it, is counted
// in Stats.TimedOut as well as Ignored. The validator's deadline always beats the heartbeat's expiry, the one place
// TimedOut moved until stop 54: the verdict came back a plain Ignore, and TimedOut stayed 0 (an audit's finding).
// The heartbeat is an hour away here, so only the verdict can count it.
func TestAValidatorsTimeoutIsCountedAsTimedOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := DefaultRelayConfig()
	cfg.VerifySignatures = false
	cfg.Router.HeartbeatInterval = time.Hour
	cfg.Router.ValidationTimeout = 50 * time.Millisecond
	relay, got := ownValidationRelay(t, ctx, cfg, func(vctx context.Context, d *Delivery) Verdict {
		if string(d.Data) == "quick" {
			return Ignore // ignored in time: not a timeout
		}
		<-vctx.Done()
		return Accept
	})
	rpc := &messages.GossipRPC{}
	for i, data := range []string{"slow0", "slow1", "slow2", "quick"} {
		rpc.Messages = append(rpc.Messages, &messages.GossipMessage{Topic: "t", Data: []byte(data),
			Origin: nid(2).Bytes(), Seq: uint64(i), OriginTime: time.Now().UnixNano()})
	}
	relay.send(peerRPC{from: nid(2), rpc: rpc})
	var st RelayStats
	pollUntil(t, ctx, func() bool {
		var err error
		st, err = relay.Stats(ctx)
		return err == nil && st.Router.Ignored == 4
	}, "four verdicts")
	if st.Router.TimedOut != 3 || st.Router.Heartbeats != 0 {
		t.Errorf("TimedOut %d (Ignored %d, heartbeats %d), want 3 of the 4 ignored", st.Router.TimedOut, st.Router.Ignored, st.Router.Heartbeats)
	}
	select {
	case d := <-got:
		t.Fatalf("%q was delivered", d)
	default:
	}
}

// A Publish whose context ends while the topic's validator judges the message returns the context's error, and the
// message is not published: the validator's context ends with the caller's, and a verdict that comes after is
// dropped. The message used to be published all the same (the validator's context ended only after
// ValidationTimeout, 5 s), so that a retry failed with ErrDuplicate.
func TestPublishWhoseContextEndsDuringValidationPublishesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var block, validatorCtxEnded atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	relay, got := ownValidationRelay(t, ctx, DefaultRelayConfig(), func(vctx context.Context, _ *Delivery) Verdict {
		if !block.Load() {
			return Accept
		}
		entered <- struct{}{}
		select {
		case <-release:
		case <-vctx.Done():
			validatorCtxEnded.Store(true)
		}
		return Accept
	})
	block.Store(true)
	pctx, pcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := relay.Publish(pctx, "t", []byte("m"))
		errc <- err
	}()
	<-entered
	pcancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("publish whose context was cancelled during validation: %v, want context.Canceled", err)
	}
	poll.Until(t, 2*time.Second, validatorCtxEnded.Load, "the validator's context did not end with the caller's")
	close(release)
	// Retried, the same message is new: nothing was published.
	block.Store(false)
	if _, err := relay.Publish(ctx, "t", []byte("m")); err != nil {
		t.Fatalf("retry: %v (the cancelled publication went out)", err)
	}
	if d := poll.Take(t, got, 1, 5*time.Second, "the retried message's delivery"); d[0] != "m" {
		t.Fatalf("delivered %q", d[0])
	}
	select {
	case d := <-got:
		t.Fatalf("a second delivery: %q", d)
	default:
	}
}

// Stopped is the barrier after Cancel: once it is closed the handler is not running and is not called again, even
// when Cancel came while deliveries were flowing (Cancel itself does not wait: a call decided just before it may
// begin after it returned, which an application freeing the handler's state right after Cancel used to meet).
func TestStoppedWaitsForTheHandlerAfterCancel(t *testing.T) {
	for iter := range 2000 {
		var ended, bad atomic.Bool
		s := &Subscription{topic: "t", done: make(chan struct{}), stopped: make(chan struct{}),
			queue: newDeliveryQueue(1024, 1<<20)}
		s.handler = func(*Delivery) {
			if ended.Load() {
				bad.Store(true)
			}
		}
		for range 64 {
			s.push(&Delivery{Topic: "t", Payload: &messages.GossipRPC{}})
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go s.run(&wg, zerolog.Nop())
		for range iter % 7 {
			runtime.Gosched() // let some deliveries go
		}
		s.Cancel()
		select {
		case <-s.Stopped():
		case <-time.After(10 * time.Second):
			t.Fatal("Stopped not closed after Cancel")
		}
		ended.Store(true) // the application frees what the handler uses
		wg.Wait()
		if bad.Load() {
			t.Fatalf("iteration %d: the handler ran after Stopped was closed", iter)
		}
	}
}

// A handler may cancel its own subscription; Stopped closes once it returns. A subscription cancelled before the
// relay took it, and one of a relay that stopped, are Stopped too.
func TestStoppedClosesInEveryWayASubscriptionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	relay := spawnRelay(t, DefaultRelayConfig(), &flakyNetwork{self: nid(1), peer: nid(2)})
	var self *Subscription
	ready := make(chan struct{})
	sub, err := relay.Subscribe(ctx, "t", func(*Delivery) {
		<-ready
		self.Cancel()
	})
	if err != nil {
		t.Fatal(err)
	}
	self = sub
	close(ready)
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "t", Subscribe: true}}}})
	if _, err := relay.Publish(ctx, "t", []byte("m")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, sub.Stopped(), "a subscription its handler cancelled")

	other, err := relay.Subscribe(ctx, "u", func(*Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	early := &Subscription{topic: "v", handler: func(*Delivery) {}, done: make(chan struct{}),
		stopped: make(chan struct{}), relay: relay}
	early.Cancel()
	c := newReplyTo[struct{}]()
	if _, err := ask(ctx, relay, &subscribe{replyTo: c, sub: early}, c); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, early.Stopped(), "a subscription cancelled before the relay took it")

	// The relay stops for good (its node closes).
	props, stopped, err := NewRelayProps(DefaultRelayConfig(), &flakyNetwork{self: nid(1), peer: nid(2)})
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(props)
	done := make(chan struct{})
	second := NewRelay(system.Root, pid, stopped, done, nil)
	last, err := second.Subscribe(ctx, "w", func(*Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	close(done)
	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, last.Stopped(), "a subscription of a stopped relay")
	other.Cancel()
	waitClosed(t, ctx, other.Stopped(), "a cancelled subscription")
}

func waitClosed(t *testing.T, ctx context.Context, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-ctx.Done():
		t.Fatalf("%s: Stopped not closed", what)
	}
}

// Cancelling the last subscription to a topic leaves it in the router (Subscription.Cancel: "The node leaves the
// topic when this was its last subscription"): a peer's message on the topic is then dropped, no longer taken,
// validated and relayed. While another subscription to the topic stands, cancelling one leaves nothing.
func TestCancellingTheLastSubscriptionLeavesTheTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := DefaultRelayConfig()
	cfg.VerifySignatures = false
	relay := spawnRelay(t, cfg, &flakyNetwork{self: nid(1), peer: nid(2)})
	var subs [2]*Subscription
	for i := range subs {
		sub, err := relay.Subscribe(ctx, "t", func(*Delivery) {})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "t", Subscribe: true}}}})
	// The relay takes what is sent to it in order, so Stats answers once it has handled the message sent before.
	dropped := func(seq uint64) uint64 {
		t.Helper()
		relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: "t",
			Origin: nid(9).Bytes(), Seq: seq, OriginTime: time.Now().UnixNano(), Data: []byte("x")}}}})
		st, err := relay.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Router.Dropped
	}
	if n := dropped(1); n != 0 {
		t.Fatalf("a message on a topic subscribed to: %d dropped, want 0", n)
	}
	subs[0].Cancel()
	if n := dropped(2); n != 0 {
		t.Fatalf("a message on a topic one subscription still stands on: %d dropped, want 0", n)
	}
	subs[1].Cancel()
	if n := dropped(3); n != 1 {
		t.Fatalf("a message on a topic whose last subscription was cancelled: %d dropped, want 1", n)
	}
}

// A handler that cancels its own subscription is not called again, not even for the deliveries already queued
// behind the one it handles: Cancel lets only a call under way, or one that began as it ran, run its course. The
// subscription's goroutine decodes each delivery's payload before the handler call, which takes time, so it
// checks for a Cancel after the decode, not only between batches of the queue.
func TestNoDeliveryStartsAfterTheHandlerCancelled(t *testing.T) {
	var calls atomic.Int32
	var first *Delivery
	s := &Subscription{topic: "t", done: make(chan struct{}), stopped: make(chan struct{}),
		queue: newDeliveryQueue(1024, 1<<20)}
	s.handler = func(d *Delivery) {
		if calls.Add(1) == 1 {
			first = d
		}
		s.Cancel()
	}
	data := anyBytes(t, wrapperspb.String("m"))
	for range 16 { // queued before the subscription's goroutine starts: one batch, decoded one by one
		s.push(&Delivery{Topic: "t", Data: data})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go s.run(&wg, zerolog.Nop())
	select {
	case <-s.Stopped():
	case <-time.After(10 * time.Second):
		t.Fatal("Stopped not closed after the handler cancelled")
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want once: deliveries started after its Cancel returned", n)
	}
	if first.Err != nil || !proto.Equal(first.Payload, wrapperspb.String("m")) {
		t.Errorf("the delivery handled: payload %v, error %v; want it decoded before the handler call", first.Payload, first.Err)
	}
}
