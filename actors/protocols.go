package actors

// The protocol registry: which actor serves each protocol id, read by the connection readers.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/actormesh/actormesh/gossip"
)

// protocolRegistry maps protocol ids to protocol actors; read by connection readers.
type protocolRegistry struct {
	mu sync.RWMutex
	m  map[string]*registration
	// byPID holds the same registrations by their actor's PID id (ofPID).
	byPID map[string]*registration
	// gen counts the changes of m: a reader's protocolRoute holds while it is unchanged.
	gen atomic.Uint64
	// dropped is closed, and replaced, each time a registration is dropped: it wakes the readers waiting for a
	// credit, which may take back those held by the messages the stopped actor lost (see peerConn.awaitCredit).
	dropped chan struct{}
}

func newProtocolRegistry() *protocolRegistry {
	return &protocolRegistry{m: make(map[string]*registration), byPID: make(map[string]*registration), dropped: make(chan struct{})}
}

// protocolRoute is one connection reader's last lookup in the registry: the next message is usually for the same
// protocol, and then needs neither the registry's lock nor its map. Owned by the reader's goroutine.
type protocolRoute struct {
	protocol string
	reg      *registration
	gen      uint64
	// received is the protocol's Stats.MessagesIn counter, and held the credits the connection's messages to reg
	// hold; both are set by Node.route.
	received *atomic.Uint64
	held     *heldCredits
}

// registration is one protocol actor: pid and gone never change; subs is guarded by the registry's mu.
type registration struct {
	pid *actor.PID
	// user is set for the actors registered through Register (not the node's own routing and gossip actors).
	user bool
	// gone is closed when the actor has stopped and its protocol is unregistered.
	gone chan struct{}
	// subs are the topic subscriptions delivering to the actor (SubscribeProtocol), cancelled when it stops.
	subs []*gossip.Subscription
	// accepts holds the type URLs of the payloads the actor takes (Accepts), nil when it takes any; inboundOnly
	// is set for an actor that takes only *Inbound (RegisterFunc). Neither changes.
	accepts     *acceptedTypes
	inboundOnly bool

	// requests are the peers' requests handed to the actor and not answered yet: when the actor stops for good,
	// those still in its mailbox are answered for it (drain). queued counts the peers' messages, requests and
	// one-way ones, handed to the actor and not processed yet: when it stops for good, those are lost
	// (Stats.InboundDropped). passed counts, by Inbound, those another protocol actor of the application passed
	// on to this one (passOn) that it has not taken yet: lost likewise, and answered if requests. drained is set
	// then; all guarded by reqMu.
	reqMu    sync.Mutex
	requests map[*Inbound]struct{}
	queued   int
	passed   map[*Inbound]int
	drained  bool

	// flows are the connections' credit holders of the actor's messages, whose flow-control windows it gives
	// back when it stops (reclaimFlows, flow.go); guarded by flowMu.
	flowMu         sync.Mutex
	flows          map[*heldCredits]struct{}
	flowsReclaimed bool
}

// track records a message (a request or a one-way one) handed to the actor; false once the actor has stopped
// (drained).
func (reg *registration) track(in *Inbound) bool {
	reg.reqMu.Lock()
	defer reg.reqMu.Unlock()
	if reg.drained {
		return false
	}
	reg.queued++
	in.tracked = true
	if !in.IsRequest() {
		return true
	}
	if reg.requests == nil {
		reg.requests = make(map[*Inbound]struct{})
	}
	reg.requests[in] = struct{}{}
	return true
}

// settle records that the actor is done with a message track recorded (Inbound.release).
func (reg *registration) settle() {
	reg.reqMu.Lock()
	if reg.queued > 0 {
		reg.queued--
	}
	reg.reqMu.Unlock()
}

// passIn records an Inbound another protocol actor passes on to this one (passOn); false once the actor has
// stopped (drained): the Inbound is lost.
func (reg *registration) passIn(in *Inbound) bool {
	reg.reqMu.Lock()
	defer reg.reqMu.Unlock()
	if reg.drained {
		return false
	}
	if reg.passed == nil {
		reg.passed = make(map[*Inbound]int)
	}
	reg.passed[in]++
	in.passedOn.Add(1)
	return true
}

// take records that the actor took an Inbound passIn recorded.
func (reg *registration) take(in *Inbound) {
	reg.reqMu.Lock()
	defer reg.reqMu.Unlock()
	switch k := reg.passed[in]; {
	case k > 1:
		reg.passed[in] = k - 1
	case k == 1:
		delete(reg.passed, in)
	default:
		return
	}
	in.passedOn.Add(-1)
}

// untrack forgets an answered request.
func (reg *registration) untrack(in *Inbound) {
	reg.reqMu.Lock()
	delete(reg.requests, in)
	reg.reqMu.Unlock()
}

// drain answers the requests the stopped actor never answered (those it had not taken from its mailbox, which are
// lost with it): their senders would otherwise wait for their timeouts. It returns how many messages, requests
// and one-way ones, the actor had not processed: lost with it, those other protocol actors passed on to it
// included.
func (reg *registration) drain(protocol string) (lost int) {
	reg.reqMu.Lock()
	reg.drained = true
	left, passed, lost := reg.requests, reg.passed, reg.queued
	reg.requests, reg.passed, reg.queued = nil, nil, 0
	reg.reqMu.Unlock()
	for in := range left {
		in.failStopped(protocol)
	}
	for in, k := range passed {
		lost += k
		if in.IsRequest() {
			in.failStopped(protocol)
		}
	}
	return lost
}

func (r *protocolRegistry) get(p string) *actor.PID {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if reg := r.m[p]; reg != nil {
		return reg.pid
	}
	return nil
}

// ofPID returns the registration of the actor pid, or nil.
func (r *protocolRegistry) ofPID(pid *actor.PID) *registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if reg := r.byPID[pid.GetId()]; reg != nil && reg.pid.Equal(pid) {
		return reg
	}
	return nil
}

// route is lookup through the reader's last lookup c, which it updates.
func (r *protocolRegistry) route(c *protocolRoute, p string) *registration {
	gen := r.gen.Load() // before the lookup: a change after it makes the next call look again
	if c.reg != nil && c.gen == gen && c.protocol == p {
		return c.reg
	}
	reg := r.lookup(p)
	*c = protocolRoute{protocol: p, reg: reg, gen: gen}
	return reg
}

// lookup returns the registration of p, or nil.
func (r *protocolRegistry) lookup(p string) *registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[p]
}

// claim registers pid for p unless p is taken; user marks an actor registered through Register.
func (r *protocolRegistry) claim(p string, pid *actor.PID, user bool, o registerOptions) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[p]; ok {
		return false
	}
	reg := &registration{pid: pid, user: user, gone: make(chan struct{}), accepts: o.accepts, inboundOnly: o.inboundOnly}
	r.m[p], r.byPID[pid.GetId()] = reg, reg
	r.gen.Add(1)
	return true
}

// droppedChan returns the channel closed when a registration is next dropped.
func (r *protocolRegistry) droppedChan() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.dropped
}

// stopped tells whether reg's actor has stopped (and reg was dropped).
func (reg *registration) stopped() bool {
	select {
	case <-reg.gone:
		return true
	default:
		return false
	}
}

// follow ties sub to reg, which cancels it when its actor stops; the subscriptions cancelled since are forgotten
// (an actor subscribing and cancelling topics for its whole life kept every one). It reports false, keeping
// nothing, when reg's actor has stopped already.
func (r *protocolRegistry) follow(reg *registration, sub *gossip.Subscription) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-reg.gone:
		return false
	default:
	}
	reg.subs = slices.DeleteFunc(reg.subs, func(s *gossip.Subscription) bool {
		select {
		case <-s.Done():
			return true
		default:
			return false
		}
	})
	reg.subs = append(reg.subs, sub)
	return true
}

// drop unregisters p if pid is its actor, and cancels the topic subscriptions that delivered to it. It returns
// the peers' messages the actor had not processed (registration.drain).
func (r *protocolRegistry) drop(p string, pid *actor.PID) (lost int) {
	r.mu.Lock()
	reg, ok := r.m[p]
	if !ok || !reg.pid.Equal(pid) {
		r.mu.Unlock()
		return 0
	}
	delete(r.m, p)
	delete(r.byPID, pid.GetId())
	r.gen.Add(1)
	close(reg.gone)
	close(r.dropped)
	r.dropped = make(chan struct{})
	subs := reg.subs
	reg.subs = nil
	r.mu.Unlock()
	lost = reg.drain(p)
	reg.reclaimFlows()
	for _, sub := range subs {
		sub.Cancel()
	}
	return lost
}

// acceptedTypes is the set of payload types a protocol actor takes (Accepts).
type acceptedTypes struct {
	urls  map[string]struct{} // type URLs, as the payloads' Any carry them
	names string              // the full names, sorted and joined, for error replies
}

// has tells whether a payload of type URL url is taken; a nil set takes any.
func (a *acceptedTypes) has(url string) bool {
	if a == nil {
		return true
	}
	_, ok := a.urls[url]
	return ok
}

// hasMessage is has for a decoded payload; a nil payload is taken only by a nil set.
func (a *acceptedTypes) hasMessage(m proto.Message) bool {
	if a == nil {
		return true
	}
	return m != nil && a.has(typeURLOf(m))
}

// RegisterOption configures a protocol at Register.
type RegisterOption func(*registerOptions)

type registerOptions struct {
	accepts *acceptedTypes
	// inboundOnly: the actor takes only *Inbound (RegisterFunc), so SubscribeProtocol refuses it.
	inboundOnly bool
}

// registerOptionsOf applies opts; an Accepts with no type, or with a type this program cannot decode (not in
// protoregistry.GlobalTypes, as a dynamicpb message is not), is an error wrapping ErrInvalidArgument: the protocol
// would refuse every payload.
func registerOptionsOf(opts []RegisterOption) (registerOptions, error) {
	var o registerOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.accepts == nil {
		return o, nil
	}
	if len(o.accepts.urls) == 0 {
		return o, fmt.Errorf("%w: Accepts names no payload type", ErrInvalidArgument)
	}
	for u := range o.accepts.urls {
		if _, err := protoregistry.GlobalTypes.FindMessageByURL(u); err != nil {
			return o, fmt.Errorf("%w: Accepts %s, which this program cannot decode (not linked in): %w",
				ErrInvalidArgument, strings.TrimPrefix(u, typeURLPrefix), err)
		}
	}
	return o, nil
}

// Protocol is a protocol actor the node registers as it starts (Config.Protocols), before it makes or takes any
// connection: a peer that connects at once, or a peer of Config.Peers, finds it served. Register, which needs a
// started node, leaves a moment in which such a peer gets ErrUnknownProtocol.
type Protocol struct {
	// ID is the protocol id, Props builds its actor, Options are Register's (Accepts).
	ID      string
	Props   *actor.Props
	Options []RegisterOption
}

// Accepts restricts the protocol to payloads of the types of msgs (only their types count; nil values of them do;
// at least one, linked into the program): a request of any other type is answered with ERROR_CODE_BAD_PAYLOAD
// (the requester gets ErrBadPayload) and a one-way message of another type is dropped, before the actor sees
// either, and the topic messages of other types are not delivered to the actor's SubscribeProtocol
// subscriptions. Without it the actor receives whatever type a peer sends and must check it: a type assertion
// that panics restarts the actor, and after Config.ProtocolRestarts within Config.ProtocolRestartWindow its
// protocol is stopped for every peer, which any peer can bring about by sending the wrong type.
func Accepts(msgs ...proto.Message) RegisterOption {
	return func(o *registerOptions) {
		if o.accepts == nil {
			o.accepts = &acceptedTypes{urls: make(map[string]struct{})}
		}
		for _, m := range msgs {
			if m == nil {
				continue
			}
			o.accepts.urls[typeURLOf(m)] = struct{}{}
		}
		names := make([]string, 0, len(o.accepts.urls))
		for u := range o.accepts.urls {
			names = append(names, strings.TrimPrefix(u, typeURLPrefix))
		}
		slices.Sort(names)
		o.accepts.names = strings.Join(names, ", ")
	}
}
