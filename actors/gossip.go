package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// gossipOverhead is the room the envelope, the gossip RPC and the message's metadata (topic, origin, signature)
// need around a gossip payload of Gossip.MaxMessageSize.
const gossipOverhead = 4 << 10

// gossipEnvelope is the room the envelope of a direct message (protocol, kind, the Any's type URL and the length
// prefixes) needs around a gossip RPC: the relay keeps its RPCs within MaxMessageSize less that
// (gossip.RelayConfig.MaxRPCSize).
const gossipEnvelope = 512

func (n *Node) gossipRelay() (*gossip.Relay, error) {
	if _, err := n.peerManager(); err != nil { // same started/closed checks
		return nil, err
	}
	return n.relay, nil
}

// Publish broadcasts msg on topic to every node subscribed to it. It returns the message's id once the message
// is handed to the node's mesh peers. Errors: gossip.ErrNoPeers when no connected peer is subscribed to the
// topic yet (nothing was sent: retry once peers have joined, see WaitTopicPeers), gossip.ErrDuplicate for a
// payload already published on the topic recently (message ids hash topic and payload), gossip.ErrMessageTooLarge,
// gossip.ErrTopicTooLong (over Gossip.Router.MaxTopicLength, 256 bytes by default), gossip.ErrEmptyTopic,
// gossip.ErrTopicNotUTF8, ErrBadPayload (a nil msg, or one that cannot be encoded), gossip.ErrRejected or
// gossip.ErrIgnored (the validator of a local subscription to the topic judged it), gossip.ErrRelayFailed (the
// relay panicked on it; it restarts), gossip.ErrRelayStopped (it failed too often and was stopped), ErrClosed,
// ErrNotStarted, or ctx's error.
func (n *Node) Publish(ctx context.Context, topic string, msg proto.Message) (gossip.MsgID, error) {
	r, err := n.gossipRelay()
	if err != nil {
		return gossip.MsgID{}, err
	}
	data, err := marshalAny(msg)
	if err != nil {
		return gossip.MsgID{}, fmt.Errorf("publish on %q: %w", topic, err)
	}
	return r.Publish(ctx, topic, data)
}

// marshalAny encodes msg as a google.protobuf.Any, deterministically so that equal messages get equal ids: the
// message inside too (anypb.New encodes it without the option, so a map field came out in a new order each time,
// and a repeated Publish got a new id rather than ErrDuplicate).
func marshalAny(msg proto.Message) ([]byte, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrBadPayload)
	}
	det := proto.MarshalOptions{Deterministic: true}
	var a anypb.Any
	if err := anypb.MarshalFrom(&a, msg, det); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	return det.Marshal(&a)
}

// Subscribe joins topic: handler receives every message accepted on it (each once, the node's own publications
// included, Delivery.Local; a Publish that fails, gossip.ErrNoPeers among others, delivers nothing here either)
// on a goroutine of the subscription. Options add a validator (gossip.WithValidator) that every message
// must pass before it is delivered or relayed. Cancel the subscription to leave (its Stopped tells when the
// handler has returned for good). Close waits for running handlers
// and validators to return: a handler must not block forever, and a validator must honour its context. A topic over
// Gossip.Router.MaxTopicLength fails with gossip.ErrTopicTooLong; a new topic past Gossip.Router.MaxPeerTopics
// (64) joined ones fails with gossip.ErrLimit. While the topic has few peers around the node,
// its relay registers the node on the topic in the DHT and connects to other members it finds there (from
// Gossip.Router.TopicSearchInterval after the join on; see FindTopicPeers). It keeps those connections while the
// peer shares one of its topics, and lets them close once idle after (a cancelled subscription, say).
func (n *Node) Subscribe(ctx context.Context, topic string, handler func(*gossip.Delivery), opts ...gossip.SubscribeOption) (*gossip.Subscription, error) {
	r, err := n.gossipRelay()
	if err != nil {
		return nil, err
	}
	return r.Subscribe(ctx, topic, handler, opts...)
}

// SubscribeProtocol joins topic for the protocol actor registered for protocol (Register): the actor receives
// every message accepted on the topic as a *TopicMessage, in its mailbox with the peers' messages, so that its state
// needs no lock. Deliveries reach it one at a time: the next is sent once the actor has processed the last, and
// while it is busy they wait in the subscription's queue (gossip.RelayConfig.DeliveryBuffer and DeliveryBufferBytes; beyond, they are
// dropped, counted and logged as a slow handler's). Options add a validator, as Subscribe's. An actor registered
// with Accepts gets only the topic's messages of those payload types; the others are not delivered to it (but are
// to the topic's other subscribers, and relayed: what a topic carries is its validators' to judge). The
// subscription ends when it is cancelled or when the actor stops. Errors: ErrNotRegistered when no actor is
// registered for protocol, ErrInvalidArgument for a protocol served by RegisterFunc (a function takes only its
// peers' messages: use Subscribe).
func (n *Node) SubscribeProtocol(ctx context.Context, topic, protocol string, opts ...gossip.SubscribeOption) (*gossip.Subscription, error) {
	r, err := n.gossipRelay()
	if err != nil {
		return nil, err
	}
	reg := n.protocols.lookup(protocol)
	if reg == nil || !reg.user {
		return nil, fmt.Errorf("subscribe protocol %q to topic %q: %w", protocol, topic, ErrNotRegistered)
	}
	if reg.inboundOnly {
		return nil, fmt.Errorf("subscribe protocol %q to topic %q: %w: a protocol served by RegisterFunc takes only "+
			"its peers' messages (use Subscribe)", protocol, topic, ErrInvalidArgument)
	}
	sub, err := r.Subscribe(ctx, topic, func(d *gossip.Delivery) {
		if !reg.accepts.hasMessage(d.Payload) {
			n.log.Debug().Str("topic", d.Topic).Str("protocol", protocol).Str("origin", d.Origin.Short()).
				Msg("topic message of a payload type the protocol does not accept: not delivered to its actor")
			return
		}
		m := &TopicMessage{Delivery: d, done: make(chan struct{})}
		n.system.Root.Send(reg.pid, m)
		select {
		case <-m.done:
		case <-reg.gone: // stopped before it took the message: the subscription is being cancelled
		case <-n.closed:
		}
	}, opts...)
	if err != nil {
		return nil, err
	}
	if !n.protocols.follow(reg, sub) {
		sub.Cancel()
		return nil, fmt.Errorf("subscribe protocol %q to topic %q: the actor stopped: %w", protocol, topic, ErrNotRegistered)
	}
	return sub, nil
}

// TopicMessage is a topic message delivered to a protocol actor subscribed with SubscribeProtocol: the
// gossip.Delivery, with its typed Payload, origin, hops and propagation delay.
type TopicMessage struct {
	*gossip.Delivery
	done    chan struct{}
	handled atomic.Bool
}

// processed lets the subscription send its next delivery; called by the actor's middleware (the first call counts,
// should the actor pass the message on to another protocol actor).
func (m *TopicMessage) processed() {
	if m.handled.CompareAndSwap(false, true) {
		close(m.done)
	}
}

// GossipStats returns the node's broadcast figures: deliveries, duplicates, IHAVE/IWANT, grafts and prunes,
// propagation delay and hop histograms.
func (n *Node) GossipStats(ctx context.Context) (gossip.RelayStats, error) {
	r, err := n.gossipRelay()
	if err != nil {
		return gossip.RelayStats{}, err
	}
	return r.Stats(ctx)
}

// Topic describes a topic as the node sees it: whether it joined, the subscribed peers, the mesh links. A name no
// topic can have fails as Subscribe's does: gossip.ErrEmptyTopic, gossip.ErrTopicTooLong, gossip.ErrTopicNotUTF8.
func (n *Node) Topic(ctx context.Context, topic string) (gossip.TopicInfo, error) {
	r, err := n.gossipRelay()
	if err != nil {
		return gossip.TopicInfo{}, err
	}
	if topic == "" {
		return gossip.TopicInfo{}, gossip.ErrEmptyTopic
	}
	if err := n.cfg.Gossip.Router.CheckTopic(topic); err != nil {
		return gossip.TopicInfo{}, err
	}
	return r.Topic(ctx, topic)
}

// WaitTopicPeers waits until at least min connected peers are subscribed to topic, polling until ctx ends. Each
// publisher needs a topic peer of its own before its Publish can succeed (gossip.ErrNoPeers until then).
func (n *Node) WaitTopicPeers(ctx context.Context, topic string, min int) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := n.Topic(ctx, topic)
		if err != nil {
			return err
		}
		if len(info.Peers) >= min {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d peers on %q (have %d): %w", min, topic, len(info.Peers), ctx.Err())
		case <-t.C:
		}
	}
}

// gossipNetwork is the node as the gossip relay sees it.
type gossipNetwork struct{ n *Node }

func (g gossipNetwork) ID() session.NodeID     { return g.n.ID() }
func (g gossipNetwork) Sign(msg []byte) []byte { return g.n.identity.Sign(msg) }
func (g gossipNetwork) Ban(id session.NodeID, d time.Duration, reason string) error {
	return g.n.Ban(id, d, reason)
}

func (g gossipNetwork) SubscribeEvents(fn func(proto.Message)) (func(), error) {
	return g.n.SubscribeEvents(fn)
}

// SendNow queues msg on the live connection to peer; it never dials.
func (g gossipNetwork) SendNow(peer session.NodeID, protocol string, msg proto.Message, priority bool) error {
	pc := g.n.peers.get(peer)
	if pc == nil {
		return fmt.Errorf("%w: %s not connected", ErrPeerGone, peer.Short())
	}
	// The bytes lie in a buffer of the connection's pool, given back once written: a relay forwards every message
	// it accepts, and these copies were a sixth of node sim's allocated bytes.
	pool := pc.sc.Buffers()
	b, buf, err := encodeDirectPooled(pool, protocol, messages.DirectKind_DIRECT_KIND_ONEWAY, 0, msg)
	if err != nil {
		return err
	}
	if err := pc.fits(len(b)); err != nil {
		pool.Put(buf)
		return err
	}
	pc.touch()
	if err := pc.sendLent(b, buf, priority); err != nil {
		pool.Put(buf)
		return err
	}
	g.n.stats.messagesOut.inc(protocol)
	return nil
}

// Retain marks the connection to peer as used for gossip, so it is not closed as transient.
func (g gossipNetwork) Retain(peer session.NodeID) {
	if pc := g.n.peers.get(peer); pc != nil {
		pc.gossiping.Store(true)
	}
}

// Relayed records on the live connection to peer, if any, that it relayed a message first just now (eviction
// protects the peers that did so most recently).
func (g gossipNetwork) Relayed(peer session.NodeID) {
	if pc := g.n.peers.get(peer); pc != nil {
		pc.lastRelayed.Store(time.Now().UnixNano())
	}
}

// Connect asks the peer manager to connect to peer and keep it; the address comes from the address book or a
// lookup.
func (g gossipNetwork) Connect(peer session.NodeID) {
	if pid, err := g.n.peerManager(); err == nil && peer != g.n.ID() {
		g.n.system.Root.Send(pid, &connectByID{id: peer})
	}
}

// IsGossipPeer tells whether the live connection to peer, if any, is not transient.
func (g gossipNetwork) IsGossipPeer(peer session.NodeID) bool {
	pc := g.n.peers.get(peer)
	return pc != nil && keptConn(pc)
}

// GossipPeers lists the live connections that are not transient.
func (g gossipNetwork) GossipPeers() []session.NodeID {
	return g.n.peers.appendIDs(nil, keptConn)
}
