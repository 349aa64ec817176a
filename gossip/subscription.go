package gossip

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Validator decides on a message before it is delivered or relayed. It runs on its own goroutine with a context
// that ends after Router.ValidationTimeout, or for the node's own publication when the Publish's context ends, and
// must honour it: once that context has ended, the message is ignored whatever the validators answer (a Publish
// then fails with ErrIgnored, or the context's error). The Delivery's Payload is decoded. A Reject penalises the
// peer that sent the message.
type Validator func(ctx context.Context, d *Delivery) Verdict

// SubscribeOption configures a subscription.
type SubscribeOption func(*Subscription)

// WithValidator makes every message of the topic pass v before it is delivered to any subscriber or relayed, the
// node's own publications included (Publish then fails with ErrRejected or ErrIgnored).
// Given more than once, a message must pass each, in order: the first verdict other than Accept is the verdict.
// Across the topic's subscriptions, a message must pass every one's validators: a Reject by any of them is the
// verdict, else an Ignore by any.
func WithValidator(v Validator) SubscribeOption {
	return func(s *Subscription) {
		prev := s.validator
		switch {
		case v == nil:
		case prev == nil:
			s.validator = v
		default:
			s.validator = func(ctx context.Context, d *Delivery) Verdict {
				if verdict := prev(ctx, d); verdict != Accept {
					return verdict
				}
				return v(ctx, d)
			}
		}
	}
}

// Subscription is a local subscriber to a topic. Its handler runs on a goroutine of its own, one delivery at a
// time, in the order the relay accepted them. It lasts until it is cancelled or the relay stops: a panic that
// restarts the relay actor does not end it.
type Subscription struct {
	topic     string
	handler   func(*Delivery)
	validator Validator
	queue     *deliveryQueue
	done      chan struct{}
	once      sync.Once
	// stopped is closed once done is and the handler's goroutine has returned (or never started).
	stopped     chan struct{}
	stoppedOnce sync.Once
	// startMu orders the start of a delivery (it checks done under it) and stop (which closes done under it). The
	// handler runs outside it (it may Cancel).
	startMu sync.Mutex
	dropped atomic.Uint64
	panics  atomic.Uint64
	relay   *Relay
	// warnedAt is when a full queue was last logged, and unwarned counts the deliveries dropped since (warnDropped;
	// the relay actor's alone).
	warnedAt time.Time
	unwarned uint64
}

// dropWarnInterval is how often a subscription whose queue stays full is logged: a warning per dropped delivery
// let any publisher make the node write a line per message once a handler fell behind (an audit's finding).
const dropWarnInterval = 10 * time.Second

// warnDropped logs a delivery the subscription's full queue dropped: the first at once, then at most one line
// every dropWarnInterval, with the count dropped since (flushDropped logs what is left of a burst).
func (s *Subscription) warnDropped(log zerolog.Logger, now time.Time) {
	s.unwarned++
	if s.warnedAt.IsZero() || now.Sub(s.warnedAt) >= dropWarnInterval {
		s.logDropped(log, now)
	}
}

// flushDropped logs the deliveries dropped since the last line, once dropWarnInterval has passed since it (the
// relay's heartbeat calls it): a burst's end was logged only with the next drop, maybe never (a review's finding).
func (s *Subscription) flushDropped(log zerolog.Logger, now time.Time) {
	if s.unwarned > 0 && now.Sub(s.warnedAt) >= dropWarnInterval {
		s.logDropped(log, now)
	}
}

func (s *Subscription) logDropped(log zerolog.Logger, now time.Time) {
	log.Warn().Str("topic", s.topic).Uint64("dropped", s.unwarned).Uint64("dropped_total", s.dropped.Load()).
		Msg("gossip: subscriber queue full, deliveries dropped")
	s.warnedAt, s.unwarned = now, 0
}

// Topic returns the subscribed topic.
func (s *Subscription) Topic() string { return s.topic }

// Dropped counts the deliveries lost because the handler's queue was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Panics counts the deliveries whose handler panicked (each logged; the subscription goes on).
func (s *Subscription) Panics() uint64 { return s.panics.Load() }

// Done is closed once the subscription is cancelled (Cancel, or its relay stopped with its node). A handler call
// under way may still run its course: Stopped tells when none does.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Stopped is closed once the subscription is cancelled (Done) and its handler is not running and will not be
// called again: after Cancel, an application waits on it before it frees what the handler uses. It never closes
// while the handler blocks, so the handler must not wait on it.
func (s *Subscription) Stopped() <-chan struct{} { return s.stopped }

// markStopped closes stopped once.
func (s *Subscription) markStopped() { s.stoppedOnce.Do(func() { close(s.stopped) }) }

// Cancel ends the subscription and returns at once, so that the handler may call it. A handler call under way, or
// one that began as Cancel ran, may still run its course: Stopped is closed once none runs and none will. The node
// leaves the topic when this was its last subscription. It is idempotent.
func (s *Subscription) Cancel() {
	if s.stop() && s.relay != nil {
		s.relay.send(&unsubscribe{sub: s})
	}
}

// stop closes done once; it tells whether this call closed it.
func (s *Subscription) stop() (first bool) {
	s.once.Do(func() {
		s.startMu.Lock()
		close(s.done)
		s.startMu.Unlock()
		first = true
	})
	return first
}

// starting tells whether a delivery may start: the subscription is not cancelled. A true answer was given before
// any Cancel returned; the handler may still be entered after (Stopped waits for it).
func (s *Subscription) starting() bool {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Subscription) push(d *Delivery) bool {
	select {
	case <-s.done:
		return true
	default:
	}
	if !s.queue.push(d) {
		s.dropped.Add(1)
		return false
	}
	return true
}

func (s *Subscription) run(wg *sync.WaitGroup, log zerolog.Logger) {
	defer wg.Done()
	defer s.markStopped()
	for {
		select {
		case <-s.done:
			return
		case <-s.queue.ready:
		}
		for _, d := range s.queue.take() {
			if d.Payload == nil && d.Err == nil {
				d.decode()
			}
			if !s.starting() { // after the decode, which takes time: a Cancel meanwhile stops it
				return
			}
			s.handle(d, log)
		}
	}
}

// handle calls the handler with d, turning a panic into a logged error and a count (Panics), as the relay does
// for validators: the message came from a peer, and a handler that chokes on it must not end the process.
func (s *Subscription) handle(d *Delivery, log zerolog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			log.Error().Interface("panic", p).Str("topic", s.topic).Str("origin", d.Origin.Short()).
				Msg("gossip subscription handler panicked; delivery skipped")
		}
	}()
	s.handler(d)
}
