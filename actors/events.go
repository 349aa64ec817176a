package actors

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/eventstream"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// SubscribeEvents calls fn with every node event (*messages.PeerConnected, *messages.PeerDisconnected,
// *messages.ProtocolStopped) until the returned function is called. Only events from then on: Peers lists the
// connections already up. The peer events are per connection, and for a moment a peer may have two (both sides
// dialed at once): a peer is connected from its first PeerConnected until a PeerDisconnected whose
// StillConnected is false; ConnId pairs each PeerDisconnected with its PeerConnected.
//
// fn runs on the publishing actor's goroutine: it must return quickly and never block. In particular it must not
// call the node's methods that wait for its actors (Register, Connect, Disconnect, Send, Request, Ping, Lookup,
// Ban, Close, ...): the actor they wait for may be the one running fn, and the call then deadlocks it until the
// call's context ends (for Register, which takes none, until Close), with every connection or protocol it serves.
// To act on an event, read it from Events instead, or hand it to a goroutine of the application's. A panic in fn is
// recovered and logged. fn is not called for an event published after unsubscribe returned, nor, when unsubscribe is called
// on the publishing goroutine (from fn itself, or another subscriber's fn), for the event being handed out then.
// Called from another goroutine, unsubscribe does not wait for fn (it may be called from fn, and would wait for
// itself): a call under way, or one that was about to start, may still run after it returned. An application that
// frees what fn uses coordinates with fn itself, as with context.AfterFunc's stop. It may be called before Start.
func (n *Node) SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("subscribe events: %w: fn is nil", ErrInvalidArgument)
	}
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	// The event stream hands an event to the subscribers it held when the event came, unsubscribed since or not:
	// stopped keeps fn from being called for an event handed out after unsubscribe returned.
	var stopped atomic.Bool
	sub := n.events.Subscribe(func(ev any) {
		if m, ok := nodeEvent(ev); ok && !stopped.Load() {
			n.callSubscriber(fn, m)
		}
	})
	return func() {
		stopped.Store(true)
		n.events.Unsubscribe(sub)
	}, nil
}

// callSubscriber calls fn with ev, logging a panic rather than letting it fail the publishing actor (the peer
// manager, which a panic would restart, dropping every connection).
func (n *Node) callSubscriber(fn func(proto.Message), ev proto.Message) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error().Interface("panic", r).Str("stack", string(debug.Stack())).Msg("event subscriber panicked")
		}
	}()
	fn(ev)
}

// MaxEventBuffer is the largest buffer Events takes.
const MaxEventBuffer = 1 << 16

// EventSubscription is a stream of the node's events made by Events. Its methods are safe for concurrent use.
type EventSubscription struct {
	// C receives the events: *messages.PeerConnected, *messages.PeerDisconnected, *messages.ProtocolStopped. It
	// is closed by Close, or by the node's Close once the events of its shutdown are in it.
	C <-chan proto.Message

	n       *Node
	sub     *eventstream.Subscription
	dropped atomic.Uint64
	quiet   atomic.Bool // QuietDrops: no warning when C fills up

	mu      sync.Mutex
	ch      chan proto.Message
	closed  bool
	late    bool // closed by the node's Close: an event published after it is counted in dropped
	lagging bool // the last event found C full
}

// Events returns a stream of the node's events from now on, as SubscribeEvents has them, in a channel the
// application reads from a goroutine of its own: unlike SubscribeEvents' callback, that goroutine may call any of
// the node's methods. C holds up to size events not yet read; an event that finds it full is dropped, counted in
// Dropped, and logged (a warning when C fills up, unless QuietDrops), since the node's actors never wait for the application: read C
// promptly, and use Peers to catch up after a loss. A size of at most 0 or above MaxEventBuffer is
// ErrInvalidArgument; after Close, ErrClosed. It may be called before Start, so as to see the node's first
// connections.
func (n *Node) Events(size int) (*EventSubscription, error) {
	if size <= 0 || size > MaxEventBuffer {
		return nil, fmt.Errorf("events: %w: size %d, want 1 to %d", ErrInvalidArgument, size, MaxEventBuffer)
	}
	n.eventSubsMu.Lock()
	defer n.eventSubsMu.Unlock()
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	s := &EventSubscription{n: n, ch: make(chan proto.Message, size)}
	s.C = s.ch
	s.sub = n.events.Subscribe(s.publish)
	if n.eventSubs == nil {
		n.eventSubs = make(map[*EventSubscription]struct{})
	}
	n.eventSubs[s] = struct{}{}
	return s, nil
}

// Dropped is the number of events dropped so far because C was full, or because C was closed already by the
// node's Close: a Close misused from a node goroutine returns after protoactor's stop timeout, before the node's
// actors stop, and the events they publish after it count here.
func (s *EventSubscription) Dropped() uint64 { return s.dropped.Load() }

// QuietDrops turns off the warning the node logs when C fills up, for an application that reports Dropped itself
// (node run logs how many events its log missed): one overflow then makes one warning, the application's. The
// events are still dropped and counted. It may be called at any time, from any goroutine.
func (s *EventSubscription) QuietDrops() { s.quiet.Store(true) }

// Close ends the subscription and closes C; the events already in C stay there to be read. It may be called more
// than once, from any goroutine.
func (s *EventSubscription) Close() {
	s.n.eventSubsMu.Lock()
	delete(s.n.eventSubs, s)
	s.n.eventSubsMu.Unlock()
	s.end()
}

// end takes the subscription off the node's event stream and closes C, once.
func (s *EventSubscription) end() {
	s.n.events.Unsubscribe(s.sub)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// publish puts a node event in C, or counts it dropped when C is full. It runs on the publishing actor's
// goroutine and never blocks.
func (s *EventSubscription) publish(ev any) {
	m, ok := nodeEvent(ev)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		if s.late {
			s.dropped.Add(1) // after the node's Close: see closeEventSubs
		}
		return
	}
	select {
	case s.ch <- m:
		s.lagging = false
	default:
		s.dropped.Add(1)
		if !s.lagging {
			s.lagging = true
			if s.quiet.Load() {
				return
			}
			s.n.log.Warn().Int("buffer", cap(s.ch)).Msg("event subscription full: events dropped until it is read")
		}
	}
}

// closeEventSubs closes every event subscription's channel: Close calls it once the node's actors have stopped,
// so that the events of the shutdown are in the channels first. The subscriptions stay on the node's event stream:
// a Close misused from a node goroutine returns after protoactor's stop timeout with actors still running, and an
// event they publish then is counted in Dropped (it was lost uncounted). A subscription's own Close takes it off.
func (n *Node) closeEventSubs() {
	n.eventSubsMu.Lock()
	subs := n.eventSubs
	n.eventSubs = nil
	n.eventSubsMu.Unlock()
	for s := range subs {
		s.mu.Lock()
		if !s.closed {
			s.closed, s.late = true, true
			close(s.ch)
		}
		s.mu.Unlock()
	}
}

// nodeEvent returns ev if it is one of the events subscribers get (the event stream carries others).
func nodeEvent(ev any) (proto.Message, bool) {
	switch e := ev.(type) {
	case *messages.PeerConnected:
		return e, true
	case *messages.PeerDisconnected:
		return e, true
	case *messages.ProtocolStopped:
		return e, true
	}
	return nil, false
}
