package actors

import (
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// dispatcherThroughput is how many messages a mailbox handles before it yields the processor, as protoactor's
// default dispatcher does.
const dispatcherThroughput = 300

// dedicatedDispatcher runs one actor's mailbox on a long-lived goroutine of its own. protoactor's default dispatcher
// starts a new goroutine for every burst of messages; a new goroutine starts with a small stack, and the gossip
// relay's bursts (signature checks) grow it by copying every time, which cost ~9 % of the CPU of a broadcast. The
// dedicated goroutine keeps its stack between bursts.
//
// A mailbox schedules at most one run at a time, so the one-slot work channel never blocks Schedule. The goroutine
// is stopped by stop (when its actor has stopped); runs scheduled after that get a goroutine of their own, as with
// the default dispatcher.
type dedicatedDispatcher struct {
	mu      sync.Mutex
	stopped bool
	work    chan func()
	quit    chan struct{}
	done    chan struct{}
}

var _ actor.Dispatcher = (*dedicatedDispatcher)(nil)

// newDedicatedDispatcher starts the dispatcher's goroutine.
func newDedicatedDispatcher() *dedicatedDispatcher {
	d := &dedicatedDispatcher{work: make(chan func(), 1), quit: make(chan struct{}), done: make(chan struct{})}
	go d.loop()
	return d
}

// Schedule runs fn on the dispatcher's goroutine.
func (d *dedicatedDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		go fn()
		return
	}
	select {
	case d.work <- fn:
	default: // not reached while mailboxes schedule one run at a time; never block a sender
		go fn()
	}
}

// Throughput is the number of messages handled between yields.
func (d *dedicatedDispatcher) Throughput() int { return dispatcherThroughput }

// stop ends the goroutine once the run scheduled last has returned. It may be called from that run.
func (d *dedicatedDispatcher) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.stopped = true
		close(d.quit)
	}
}

// finished tells whether the goroutine has ended.
func (d *dedicatedDispatcher) finished() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *dedicatedDispatcher) loop() {
	defer close(d.done)
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.quit:
			// Schedule no longer uses the channel; run what it left there.
			select {
			case fn := <-d.work:
				fn()
			default:
			}
			return
		}
	}
}

// stopDispatcherOnStop is a receiver middleware that stops d once the actor has stopped.
func stopDispatcherOnStop(d *dedicatedDispatcher) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			next(c, env)
			if _, ok := env.Message.(*actor.Stopped); ok {
				d.stop()
			}
		}
	}
}

// dispatcherStopTimeout bounds how long Close waits for a dedicated dispatcher's last run.
const dispatcherStopTimeout = 5 * time.Second

// newDispatcher starts a dedicated dispatcher that Close stops.
func (n *Node) newDispatcher() *dedicatedDispatcher {
	d := newDedicatedDispatcher()
	n.dispatchersMu.Lock()
	n.dispatchers = slices.DeleteFunc(n.dispatchers, (*dedicatedDispatcher).finished) // from before a restart
	n.dispatchers = append(n.dispatchers, d)
	n.dispatchersMu.Unlock()
	return d
}

// stopDispatchers stops the node's dedicated dispatchers (their actors have stopped) and waits for their goroutines.
func (n *Node) stopDispatchers() {
	n.dispatchersMu.Lock()
	ds := n.dispatchers
	n.dispatchers = nil
	n.dispatchersMu.Unlock()
	deadline := time.NewTimer(dispatcherStopTimeout)
	defer deadline.Stop()
	for _, d := range ds {
		d.stop()
		select {
		case <-d.done:
		case <-deadline.C:
			n.log.Warn().Msg("an actor's mailbox run did not return after the actor stopped")
			return
		}
	}
}
