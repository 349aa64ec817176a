package gossip

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Protocol is the protocol id of the gossip exchange between relays.
const Protocol = "actormesh/gossip/1"

// Errors of the relay.
var (
	// ErrMessageTooLarge: a published message is over RelayConfig.MaxMessageSize.
	ErrMessageTooLarge = errors.New("gossip: message too large")
	// ErrRelayStopped: the relay is stopped: its actor failed too often and its supervisor stopped it, or its
	// node closed (unless the node gave NewRelay an error of its own for that).
	ErrRelayStopped = errors.New("gossip: relay stopped")
	// ErrRelayFailed: the relay actor panicked while it handled the request. Its supervisor restarts it (the local
	// subscriptions carry on) or, once it failed too often, stops it (ErrRelayStopped). The request may have been
	// carried out in part.
	ErrRelayFailed = errors.New("gossip: relay failed on the request")
	// ErrEmptyTopic: a topic name is empty.
	ErrEmptyTopic = errors.New("gossip: empty topic name")
	// ErrNilHandler: Subscribe was given no handler.
	ErrNilHandler = errors.New("gossip: nil handler")
	// ErrRejected: a validator of a local subscription to the topic rejected the node's own publication; nothing
	// was sent or delivered.
	ErrRejected = errors.New("gossip: the topic's validator rejected the message")
	// ErrIgnored: a validator of a local subscription to the topic ignored the node's own publication (or timed
	// out, or panicked); nothing was sent or delivered.
	ErrIgnored = errors.New("gossip: the topic's validator ignored the message")
)

// Network is what the relay needs from the node that embeds it.
type Network interface {
	// ID is the local node's id.
	ID() session.NodeID
	// Sign signs with the node's identity key.
	Sign(msg []byte) []byte
	// SendNow queues msg for protocol on a connected peer, without dialing or blocking. A priority message may
	// use the connection's control allowance when data fills its queue. msg is encoded before SendNow returns and
	// must not be kept: the relay reuses it for the next RPC.
	SendNow(peer session.NodeID, protocol string, msg proto.Message, priority bool) error
	// GossipPeers lists the connected peers the relay starts gossip with: kept connections, not the transient
	// ones opened for a lookup or a one-off request.
	GossipPeers() []session.NodeID
	// IsGossipPeer tells whether peer is one of GossipPeers, without listing them.
	IsGossipPeer(peer session.NodeID) bool
	// SubscribeEvents calls fn with the node's peer events (*messages.PeerConnected, *messages.PeerDisconnected)
	// until unsubscribe is called; fn must not block.
	SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error)
	// Retain tells the node that a peer gossips on its connection, which must then not be closed as transient.
	Retain(peer session.NodeID)
	// Relayed tells the node, once a heartbeat, that a peer was the first to deliver a message of another origin
	// that the relay accepted since the heartbeat before: a peer worth keeping when the node must choose which to
	// drop.
	Relayed(peer session.NodeID)
	// Ban disconnects a peer and refuses it for d; reason is logged and told to the peer.
	Ban(id session.NodeID, d time.Duration, reason string) error
	// Connect asks the node to connect to a peer and keep it, finding its address itself. It does not block; the
	// connection shows as a PeerConnected event.
	Connect(peer session.NodeID)
	// DiscoverTopic asks the node to register itself on topic in the DHT (register), and to connect to and keep
	// up to want of the nodes registered on it (Output.Discover). It does not block; the peers' subscriptions come
	// over the new connections, and the node tells the relay how the lookup ended (Relay.TopicLookupDone). A node
	// without a DHT ignores it.
	DiscoverTopic(topic string, register bool, want int)
	// Release tells the node that a peer shares no topic the relay joined (Output.Release): a connection the node
	// keeps only because DiscoverTopic made it need not be kept any more. Keep undoes it once the peer shares one
	// again (Output.Keep).
	Release(peer session.NodeID)
	Keep(peer session.NodeID)
	// Joining tells whether the node is still making its first connections (Router.SetJoining: topic discovery
	// waits meanwhile). It must not block; it is asked once a heartbeat.
	Joining() bool
}

// RelayConfig configures the relay actor. Start from DefaultRelayConfig.
type RelayConfig struct {
	// Router configures the gossip state machine (mesh degrees, heartbeat, caches, validation bounds). Its Tree
	// is on by default here; Self is set by the relay.
	Router Config
	// MaxMessageSize caps the data of a message (its encoded payload), published or received (default 512 KiB).
	MaxMessageSize int
	// MaxRPCSize is the largest encoded RPC the Network carries: the relay splits what it has for one peer into
	// RPCs under it, control riding the first (default 1 MiB - 1 KiB; the node sets it from its own message size
	// limit). It must hold a message of MaxMessageSize with its metadata (RPCMessageOverhead more).
	MaxRPCSize int
	// SignMessages signs published messages with the node's identity (default true).
	SignMessages bool
	// VerifySignatures rejects a received message that does not carry a valid signature of its origin, before it
	// is recorded as seen, and penalises the peer that sent it (default true).
	VerifySignatures bool
	// PeerMessageRate and PeerMessageBurst limit the messages one peer makes the relay process (default 2000/s,
	// burst 4000): each takes a token. What comes beyond is dropped unseen (a message can still be pulled from
	// another peer) and counted in RelayStats.RateLimited.
	PeerMessageRate  float64
	PeerMessageBurst int
	// PeerControlRate and PeerControlBurst limit, apart from its messages, the hello, subscriptions and control
	// one peer makes the relay process (default 2000/s, burst 4000), in units of about a microsecond of the
	// relay's work: an RPC carrying any costs 1, plus 1 per subscription and per topic entry of its control
	// (IHAVE, GRAFT, PRUNE, tree report), plus 1 per 8 IHAVE ids and per 32 IWANT ids and tree cuts, as far as the
	// relay reads them, plus 32 per root's beacon signature check its tree reports had done, paid after the fact
	// from what the budget holds past a quarter of the burst (a check it cannot pay waits for a later report);
	// an RPC costing more than the burst takes the whole burst. An honest node sends a peer 0.5 such RPCs (1.5
	// units) a second on average and at most 8 (21 units) in any second of a simulation with kills, per topic the
	// two share (it grows with a shorter heartbeat); at 2000 RPCs a second, one hostile peer held the relay's
	// goroutine 246 ms a second with tree reports and 1.85 s with IHAVEs when each RPC took a token of the message
	// rate, 1-5 ms with this budget (BenchmarkControlFlood). What comes beyond is counted in
	// RelayStats.RateLimitedControl: the control is dropped, the subscriptions deferred. PeerControlBurst must be
	// at least minPeerControlBurst (64), or no beacon check could ever be paid.
	PeerControlRate  float64
	PeerControlBurst int
	// PenaltyBan is how long a peer is banned once Router.PenaltyThreshold of its messages were rejected
	// (default 10m).
	PenaltyBan time.Duration
	// DeliveryBuffer and DeliveryBufferBytes bound the queue of each subscription's handler, in deliveries and in
	// payload bytes (defaults 1024 and 16 MiB; an empty queue takes a delivery of any size). A delivery that finds it
	// full is dropped, counted in RelayStats.DeliveryDropped and logged.
	DeliveryBuffer      int
	DeliveryBufferBytes int
	// Logger receives the relay's logs.
	Logger zerolog.Logger
}

// DefaultRelayConfig returns the defaults described on RelayConfig.
func DefaultRelayConfig() RelayConfig {
	rc := DefaultConfig()
	rc.Tree = true // Self is set by the relay
	// The tree carries the messages; the mesh's lazy links announce them to up to D peers each, so that few
	// random others are needed to repair what a broken tree link missed.
	rc.Dlazy = 2
	// While no repair goes on around a node, its mesh links hear IHAVE every other heartbeat, taking turns: a
	// sound tree needs no repair, and IHAVE-only messages were half of the control messages; node sim at N = 200
	// sends 10 % fewer messages per delivery (control -23 %) for the same delivery and p100, its wire bytes -3 %.
	rc.MeshGossipBeats = 2
	rc.TreeRanked = true // the tree hangs from the best-connected node: shallower
	// A publisher pushes to (about) all its topic peers, not only its tree links: at N = 200 with 8 outbound
	// connections per node, the median delay to half the nodes drops by a hop (p50 91 -> 71-76 ms in 7 seeds of 8) for 0.13
	// duplicates and ~180 more wire bytes per delivery.
	rc.PublishFanout = 16
	// The nodes three hops from the root connect to their parent's parent while they are a thin last layer: at
	// N = 200, the slowest path of most messages loses a hop (p100 115-120 -> 97-104 ms) for one more connection
	// at about a tenth of the nodes.
	rc.TreeShortcutDist = 3
	// A node of a topic few of its peers share registers on it in the DHT, and one with too few topic peers looks
	// the others up there: a topic held by a handful of a network's nodes is found all the same.
	rc.TopicRegisterInterval, rc.TopicSearchInterval = 8*time.Minute, 5*time.Second
	return RelayConfig{
		Router: rc, MaxMessageSize: 512 << 10, MaxRPCSize: 1<<20 - 1<<10, SignMessages: true, VerifySignatures: true,
		PeerMessageRate: 2000, PeerMessageBurst: 4000, PeerControlRate: 2000, PeerControlBurst: 4000,
		PenaltyBan: 10 * time.Minute, DeliveryBuffer: 1024, DeliveryBufferBytes: 16 << 20, Logger: zerolog.Nop(),
	}
}

// Validate checks c; errors wrap ErrInvalidConfig.
func (c RelayConfig) Validate() error {
	if err := c.Router.Validate(); err != nil {
		return err
	}
	if err := session.CheckPositive(
		session.Field{Name: "MaxMessageSize", Value: c.MaxMessageSize}, session.Field{Name: "PeerMessageRate", Value: c.PeerMessageRate},
		session.Field{Name: "PeerMessageBurst", Value: c.PeerMessageBurst}, session.Field{Name: "PeerControlRate", Value: c.PeerControlRate},
		session.Field{Name: "PeerControlBurst", Value: c.PeerControlBurst}, session.Field{Name: "PenaltyBan", Value: c.PenaltyBan},
		session.Field{Name: "DeliveryBuffer", Value: c.DeliveryBuffer}, session.Field{Name: "DeliveryBufferBytes", Value: c.DeliveryBufferBytes},
	); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.PeerControlBurst < minPeerControlBurst {
		return fmt.Errorf("%w: PeerControlBurst %d, want at least %d (a beacon signature check past the quarter kept)",
			ErrInvalidConfig, c.PeerControlBurst, minPeerControlBurst)
	}
	if c.Router.MaxTopicLength > maxRelayTopicLength {
		return fmt.Errorf("%w: Router.MaxTopicLength %d, want at most %d (RPCMessageOverhead)", ErrInvalidConfig,
			c.Router.MaxTopicLength, maxRelayTopicLength)
	}
	// Compared as MaxMessageSize against the room less the overhead: MaxMessageSize + RPCMessageOverhead overflowed
	// for a huge MaxMessageSize, and passed.
	if c.MaxMessageSize > c.MaxRPCSize-RPCMessageOverhead {
		return fmt.Errorf("%w: MaxRPCSize %d cannot hold a message of MaxMessageSize %d (needs %d more)", ErrInvalidConfig,
			c.MaxRPCSize, c.MaxMessageSize, RPCMessageOverhead)
	}
	if c.MaxMessageSize > c.Router.MaxIWantReplyBytes-RPCMessageOverhead {
		return fmt.Errorf("%w: Router.MaxIWantReplyBytes %d cannot serve a message of MaxMessageSize %d", ErrInvalidConfig,
			c.Router.MaxIWantReplyBytes, c.MaxMessageSize)
	}
	// A message the cache cannot hold is never announced nor served: a node that missed its push never got it.
	if c.MaxMessageSize > c.Router.CacheMaxBytes-RPCMessageOverhead {
		return fmt.Errorf("%w: Router.CacheMaxBytes %d cannot hold a message of MaxMessageSize %d", ErrInvalidConfig,
			c.Router.CacheMaxBytes, c.MaxMessageSize)
	}
	return nil
}

// FitRPCSize returns c for a Network that carries RPCs of at most limit bytes: MaxRPCSize lowered to limit and
// MaxMessageSize to what an RPC of that size holds (1 at least, with MaxRPCSize raised to hold it if need be).
func (c RelayConfig) FitRPCSize(limit int) RelayConfig {
	c.MaxRPCSize = min(c.MaxRPCSize, limit)
	c.MaxMessageSize = max(1, min(c.MaxMessageSize, c.MaxRPCSize-RPCMessageOverhead))
	c.MaxRPCSize = max(c.MaxRPCSize, c.MaxMessageSize+RPCMessageOverhead)
	return c
}

// Delivery is a message handed to a subscriber.
type Delivery struct {
	Topic string
	ID    MsgID
	// Origin is the publisher, Seq its sequence number, OriginTime when it published.
	Origin     session.NodeID
	Seq        uint64
	OriginTime time.Time
	// Hops is the number of links the message crossed to reach this node (0 for own publications).
	Hops uint32
	// ReceivedAt is when the relay accepted the message; Delay is ReceivedAt - OriginTime, the propagation delay
	// (it includes any clock difference between origin and receiver).
	ReceivedAt time.Time
	Delay      time.Duration
	// Local is set for the node's own publications.
	Local bool
	// Data is the payload as published: an encoded google.protobuf.Any. It is the relay's copy, which it may still
	// serve to peers asking for the message: read it, never modify it (a changed copy would fail its signature at
	// the peers it reaches, which would penalise this node).
	Data []byte
	// Payload is Data decoded into its Go type, or nil with Err set when the type is not known to this process
	// or the bytes are malformed.
	Payload proto.Message
	Err     error
}

func (d *Delivery) decode() {
	typeURL, value, ok := splitAny(d.Data)
	if !ok { // not in the shape splitAny takes: proto decides
		var a anypb.Any
		if err := proto.Unmarshal(d.Data, &a); err != nil {
			d.Err = fmt.Errorf("gossip payload: %w", err)
			return
		}
		typeURL, value = a.GetTypeUrl(), a.GetValue()
	}
	// As anypb.UnmarshalNew, without first copying the value out of Data.
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		d.Err = fmt.Errorf("gossip payload %s: %w", typeURL, err)
		return
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(value, m); err != nil {
		d.Err = fmt.Errorf("gossip payload %s: %w", typeURL, err)
		return
	}
	d.Payload = m
}

// splitAny reads an encoded google.protobuf.Any made of its two fields only, each once at most: its type URL and
// its value, a slice of b. Anything else (other fields, repeats, other wire types, malformed bytes, a type URL
// that is not UTF-8) gives false, and the caller leaves b to proto.Unmarshal.
func splitAny(b []byte) (typeURL string, value []byte, ok bool) {
	var seen [3]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) || seen[num] {
			return "", nil, false
		}
		seen[num] = true
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return "", nil, false
		}
		if num == 1 {
			if !utf8.Valid(v) {
				return "", nil, false
			}
			typeURL = string(v)
		} else {
			value = v
		}
		b = b[n+m:]
	}
	return typeURL, value, true
}

// RelayStats are the relay's figures since it started.
type RelayStats struct {
	// Router holds the state machine's counters: deliveries, duplicates, IHAVE/IWANT, grafts and prunes.
	Router Stats
	// Peers is the number of gossip peers, Topics the topics joined.
	Peers  int
	Topics []string
	// Delay is the histogram of propagation delays of delivered messages from other nodes, in milliseconds;
	// Hops the histogram of their hop counts.
	Delay Histogram
	Hops  Histogram
	// RateLimited counts messages dropped by the per-peer rate limit, BadSignatures the messages rejected for
	// their signature, Malformed those that could not be read or were too large, SendFailures the RPCs that
	// could not be queued, DeliveryDropped the deliveries lost to full subscriber queues, Banned the bans for
	// invalid messages (at Router.PenaltyThreshold of a peer's, again at each as many more), OwnRejected the node's own publications its validators rejected or ignored.
	RateLimited, BadSignatures, Malformed, SendFailures, DeliveryDropped, Banned, OwnRejected uint64
	// RateLimitedControl counts the RPCs whose subscriptions and control the peer's control budget
	// (PeerControlRate) refused: their control is dropped (heartbeats retry grafts and reports), their
	// subscriptions deferred, not lost (relaysubs.go). Until stop 54 they counted in RateLimited, whose messages
	// are dropped; until stop 58 they drew on the message rate (PeerMessageRate).
	RateLimitedControl uint64
	// Verified counts the origin signatures checked (VerifySignatures): one per message, on the first copy
	// received, as duplicates are recognised before their signature is checked. Each check is the largest
	// single cost of relaying a message (~30-40 µs of CPU).
	Verified uint64
	// RPCsSent counts the gossip RPCs queued to peers, one frame on the wire each, and ControlRPCsSent those of them
	// that carry no message (subscriptions, IHAVE, IWANT, GRAFT, PRUNE, tree reports alone). Every RPC costs both
	// ends a write, a read, their wake-ups and a pass through the relay whatever its size: after the signature
	// checks, what a relay's CPU scales with. Unlike CPU time, they do not vary with the host's load.
	RPCsSent, ControlRPCsSent uint64
}

// TopicInfo describes one topic as the relay sees it.
type TopicInfo struct {
	Joined bool
	// Peers are the peers subscribed to the topic; Eager and Lazy the mesh links.
	Peers, Eager, Lazy []session.NodeID
	// Root, Parent and Dist place the node in the topic's spanning tree (RelayConfig.Router.Tree): the tree's
	// root, the next hop towards it (zero at the root) and the distance to it; TreeLinks are the links messages
	// take (parent and children).
	Root, Parent session.NodeID
	Dist         int
	TreeLinks    []session.NodeID
}

// Relay is the handle of a running relay actor.
type Relay struct {
	root    *actor.RootContext
	pid     *actor.PID
	stopped <-chan struct{}
	done    <-chan struct{}
	closed  error
}

// NewRelay returns the handle of the relay actor pid, spawned from the props of NewRelayProps: stopped is the
// channel NewRelayProps returned with them, done closes when the node stops, and closed is the error of the calls
// it ends (nil: ErrRelayStopped; a node gives its own, so that its callers tell a Close from a failure).
func NewRelay(root *actor.RootContext, pid *actor.PID, stopped, done <-chan struct{}, closed error) *Relay {
	return &Relay{root: root, pid: pid, stopped: stopped, done: done, closed: cmp.Or(closed, ErrRelayStopped)}
}

func (r *Relay) send(msg any) { r.root.Send(r.pid, msg) }

// Upgraded tells the relay that the node now keeps a connection it had as transient (one a lookup opened): the
// relay greets the peer at once rather than at its next heartbeat, as the peer, to which the connection may be
// transient still, closes it once idle (within DiscoveryIdleTimeout) unless gossip starts on it. It does not block.
func (r *Relay) Upgraded(peer session.NodeID) {
	r.send(&messages.PeerConnected{PeerId: peer.Bytes()})
}

// topicLookupDone carries TopicLookupDone to the relay actor.
type topicLookupDone struct {
	topic    string
	register bool
	err      error
}

// TopicLookupDone tells the relay how a topic lookup it asked for (Network.DiscoverTopic) ended: register as asked
// (or merged with another request), err nil once it succeeded. A registration that failed is retried soon
// (Router.TopicLookupDone). It does not block.
func (r *Relay) TopicLookupDone(topic string, register bool, err error) {
	r.send(&topicLookupDone{topic: topic, register: register, err: err})
}

// ask sends the relay actor req, whose reply channel is c, and waits for the reply. The error is the wait's (the
// context ended, or the relay stopped: the request may never be answered); the reply holds the request's own. A
// context ended already sends nothing: a Publish under it used to publish and still report the context's error,
// and its retry then failed with ErrDuplicate. (A context that ends while the request is on its way leaves its
// outcome unknown.)
func ask[T any](ctx context.Context, r *Relay, req request, c replyTo[T]) (reply[T], error) {
	if err := ctx.Err(); err != nil {
		return reply[T]{}, err
	}
	r.send(req)
	select {
	case v := <-c.reply:
		return v, nil
	case <-ctx.Done():
		return reply[T]{}, ctx.Err()
	case <-r.stopped:
		select {
		case <-r.done: // stopped by the node's close
			return reply[T]{}, r.closed
		default:
			return reply[T]{}, ErrRelayStopped
		}
	case <-r.done:
		return reply[T]{}, r.closed
	}
}

// Publish publishes data (an encoded google.protobuf.Any) on topic. It fails with ErrNoPeers when no peer is
// subscribed to the topic yet (nothing was sent), ErrDuplicate when the same payload was published on the topic
// within the seen-cache's memory, ErrMessageTooLarge, ErrEmptyTopic, ErrTopicTooLong (over
// Config.MaxTopicLength), ErrTopicNotUTF8, ErrRejected or ErrIgnored (a validator of a local subscription to the
// topic judged it: WithValidator), ErrRelayFailed (the relay actor panicked on it), ErrRelayStopped, or the
// context's error.
func (r *Relay) Publish(ctx context.Context, topic string, data []byte) (MsgID, error) {
	if topic == "" {
		return MsgID{}, ErrEmptyTopic
	}
	c := newReplyTo[MsgID]()
	// A copy: the relay keeps the bytes (it serves them to peers and subscribers), the caller may reuse its own.
	res, err := ask(ctx, r, &publishRequest{replyTo: c, ctx: ctx, topic: topic, data: bytes.Clone(data)}, c)
	if err != nil {
		return MsgID{}, fmt.Errorf("publish on %q: %w", topic, err)
	}
	return res.val, res.err
}

// Subscribe adds a subscriber to topic: handler is called with every message accepted on the topic, the node's
// own publications included (a panic in it is logged and counted, Subscription.Panics, and the next delivery
// follows). The node joins the topic's mesh with its first subscription. It fails with
// ErrEmptyTopic, ErrTopicTooLong (over Config.MaxTopicLength), ErrTopicNotUTF8, ErrLimit (a new topic past
// Config.MaxPeerTopics joined ones: nothing is joined), ErrRelayFailed, ErrRelayStopped or the context's error.
func (r *Relay) Subscribe(ctx context.Context, topic string, handler func(*Delivery), opts ...SubscribeOption) (*Subscription, error) {
	if topic == "" {
		return nil, ErrEmptyTopic
	}
	if handler == nil {
		return nil, fmt.Errorf("subscribe: %w", ErrNilHandler)
	}
	s := &Subscription{topic: topic, handler: handler, done: make(chan struct{}), stopped: make(chan struct{}), relay: r}
	for _, o := range opts {
		o(s)
	}
	c := newReplyTo[struct{}]()
	res, err := ask(ctx, r, &subscribe{replyTo: c, sub: s}, c)
	if err != nil {
		s.Cancel()
		return nil, fmt.Errorf("subscribe to %q: %w", topic, err)
	}
	if res.err != nil {
		s.Cancel() // the relay may have taken it before it failed (ErrRelayFailed)
		return nil, res.err
	}
	return s, nil
}

// Stats returns the relay's figures.
func (r *Relay) Stats(ctx context.Context) (RelayStats, error) {
	c := newReplyTo[RelayStats]()
	s, err := result(ask(ctx, r, &statsRequest{replyTo: c}, c))
	if err != nil {
		return RelayStats{}, fmt.Errorf("gossip stats: %w", err)
	}
	return s, nil
}

// Topic describes a topic: whether the node joined it, its subscribed peers and mesh links.
func (r *Relay) Topic(ctx context.Context, topic string) (TopicInfo, error) {
	c := newReplyTo[TopicInfo]()
	info, err := result(ask(ctx, r, &topicRequest{replyTo: c, topic: topic}, c))
	if err != nil {
		return TopicInfo{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	return info, nil
}

// request is a local request to the relay actor, answered through the replyTo it embeds.
type request interface {
	// fail answers the request with err, in place of its result.
	fail(err error)
}

// replyTo is the reply channel of a request, buffered: the relay actor never blocks on it.
type replyTo[T any] struct{ reply chan reply[T] }

// reply is the relay actor's answer to a request: a value, or the error in its place.
type reply[T any] struct {
	val T
	err error
}

func newReplyTo[T any]() replyTo[T] { return replyTo[T]{reply: make(chan reply[T], 1)} }

// answer replies to the request. A request has one answer: should the actor panic after it answered, the
// failure's answer is dropped.
func (c replyTo[T]) answer(val T, err error) {
	select {
	case c.reply <- reply[T]{val: val, err: err}:
	default:
	}
}

func (c replyTo[T]) fail(err error) {
	var zero T
	c.answer(zero, err)
}

// result is the value of a reply from ask, or the error of the wait or of the request.
func result[T any](v reply[T], err error) (T, error) {
	if err == nil {
		err = v.err
	}
	return v.val, err
}

// relay actor messages
type (
	publishRequest struct {
		replyTo[MsgID]
		// ctx is the caller's: the validation of the node's own publication ends with it, and a publication whose
		// caller's context ended while it was validated is not published (the caller is told the context's error).
		ctx   context.Context
		topic string
		data  []byte
	}
	subscribe struct {
		replyTo[struct{}]
		sub *Subscription
	}
	unsubscribe  struct{ sub *Subscription }
	statsRequest struct{ replyTo[RelayStats] }
	topicRequest struct {
		replyTo[TopicInfo]
		topic string
	}
	// heartbeatTick and validated name the incarnation of the actor whose timer or validator sent them: the
	// next one, after a restart, ignores them.
	heartbeatTick struct{ from *relayActor }
	validated     struct {
		from    *relayActor
		msg     *Message // the copy validated: a late verdict must not apply to another copy of its id
		verdict Verdict
		// timedOut: the validators' context ended at ValidationTimeout (verdict is Ignore); counted in
		// Stats.TimedOut.
		timedOut bool
	}
	// ownValidated is the verdict of the topic's validators on the node's own publication: the next incarnation,
	// after a restart, answers its request with ErrRelayFailed.
	ownValidated struct {
		from    *relayActor
		req     *publishRequest
		msg     *Message
		verdict Verdict
	}
)
