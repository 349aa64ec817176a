package gossip

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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
