package actors

// Topic discovery: the relay asks the node to register on a topic in the DHT and to connect to nodes registered
// on it (gossip.Output.Discover); the peer manager runs the lookups and keeps the connections.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

const (
	// maxTopicDiscoveries bounds the topic lookups in progress at once. A request for a topic being looked up
	// already, or over the bound, waits (merged with any other waiting for that topic) until a lookup ends; at
	// most maxTopicsWaiting topics wait.
	maxTopicDiscoveries = 4
	maxTopicsWaiting    = 256
	// topicLookupTimeout bounds one topic lookup.
	topicLookupTimeout = 30 * time.Second
)

// discoverTopic asks the peer manager to register the node on a topic in the DHT and to connect to up to want of
// the nodes registered on it (gossip.Network.DiscoverTopic).
type discoverTopic struct {
	topic    string
	register bool
	want     int
}

// topicFound carries a topic lookup's outcome back to the peer manager instance that started it.
type topicFound struct {
	topic    string
	register bool
	want     int
	found    []routing.Entry
	err      error
	from     *peerManager
}

// releasePeer and keepPeer carry gossip.Network.Release and Keep to the peer manager.
type (
	releasePeer struct{ id session.NodeID }
	keepPeer    struct{ id session.NodeID }
)

var (
	errTopicsWaiting = fmt.Errorf("too many topic discoveries waiting (%d)", maxTopicsWaiting)
	errReachedNobody = errors.New("the topic lookup asked no node")
)

// DiscoverTopic implements gossip.Network: a node without discovery ignores it.
func (g gossipNetwork) DiscoverTopic(topic string, register bool, want int) {
	if g.n.cfg.DisableDiscovery {
		return
	}
	if pid, err := g.n.peerManager(); err == nil {
		g.n.system.Root.Send(pid, &discoverTopic{topic: topic, register: register, want: want})
	}
}

// discoverTopic starts a topic lookup in a goroutine the peer manager owns, or, while one runs for the topic
// already or maxTopicDiscoveries do, keeps the request until one ends (a dropped registration would have waited
// for the relay's next one, up to 15 minutes, and could lapse).
func (m *peerManager) discoverTopic(d *discoverTopic) {
	if m.ctx.Err() != nil {
		return
	}
	if m.discovering == nil {
		m.discovering, m.topicsWaiting = make(map[string]struct{}), make(map[string]*discoverTopic)
	}
	if _, busy := m.discovering[d.topic]; busy || len(m.discovering) >= maxTopicDiscoveries {
		switch w, ok := m.topicsWaiting[d.topic]; {
		case ok:
			w.register, w.want = w.register || d.register, max(w.want, d.want)
		case len(m.topicsWaiting) < maxTopicsWaiting:
			m.topicsWaiting[d.topic] = d
		default:
			m.n.log.Debug().Str("topic", d.topic).Msg("topic discovery dropped: too many topics waiting")
			m.lookupDone(d.topic, d.register, errTopicsWaiting)
		}
		return
	}
	m.discovering[d.topic] = struct{}{}
	self, root, n := m.self, m.root, m.n
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, topicLookupTimeout)
		res, err := n.lookup(ctx, &routing.LookupRequest{Target: routing.TopicKey(d.topic), Topic: true, Register: d.register})
		cancel()
		if err == nil && len(res.Closest) == 0 {
			// The lookup asked nobody (its only starting point was this node): the registration is held nowhere, the
			// search saw nothing. One that asked nodes none of which answered fails with routing.ErrNoAnswer; until
			// stop 54 such a search counted as a success for the relay, and a registration failed apart.
			err = errReachedNobody
		}
		root.Send(self, &topicFound{topic: d.topic, register: d.register, want: d.want, found: res.Registered, err: err, from: m})
	}()
}

// topicFound connects to up to want of the registered nodes found that the node does not gossip with yet, in the
// lookup's order (the highest scores first: registeredTally), and keeps those connections without redialing them once
// lost: the relay searches again while the topic is short of peers. A transient connection to one is kept from
// then on. The relay releases them once the peer shares none of its topics (release).
func (m *peerManager) topicFound(ctx actor.Context, f *topicFound) {
	delete(m.discovering, f.topic)
	for topic, w := range m.topicsWaiting { // the next waiting topic not being looked up takes the free place
		if _, busy := m.discovering[topic]; !busy {
			delete(m.topicsWaiting, topic)
			m.discoverTopic(w)
			break
		}
	}
	m.lookupDone(f.topic, f.register, f.err)
	if f.err != nil {
		m.n.log.Debug().Err(f.err).Str("topic", f.topic).Bool("register", f.register).Msg("topic lookup failed")
		return
	}
	m.n.log.Debug().Str("topic", f.topic).Int("registered", len(f.found)).Int("want", f.want).Msg("topic lookup done")
	now := time.Now()
	dialed := 0
	for _, e := range f.found {
		if dialed >= f.want || m.ctx.Err() != nil {
			break
		}
		if e.ID == m.n.ID() || m.isHeld(e.ID, now) {
			continue
		}
		if c, connected := m.conns[e.ID]; connected {
			// A gossip peer already (kept on either side, or released by the relay: a stale registration) has
			// told the relay its topics: it gains nothing. A transient connection (a lookup's) is kept from now
			// on, and the relay greets the peer at once (keepConn).
			if !keptConn(c.pc) && !c.pc.released {
				m.keepConn(c)
				c.pc.forTopics = true
				dialed++
			}
			continue
		}
		if _, inProgress := m.dialing[e.ID]; inProgress {
			continue
		}
		m.n.addrs.put(e.ID, e.Addr)
		m.dial(ctx, &dialRequest{addr: session.PeerAddr{ID: e.ID, Addr: e.Addr}, keep: true, once: true, auto: true})
		dialed++
	}
}

// Joining implements gossip.Network: the node is still making its first connections while its bootstrapper dials
// for more outbound connections (bootstrap.Network.SetJoining) and it keeps fewer than the mesh's Dlo. A node with
// that many that is still short of peers on a topic finds the topic sparse around it; one with fewer, in a topic
// most nodes share, finds the topic's peers among the connections still to come. A node whose bootstrapper wants
// none (TargetOutbound 0), or has nobody left to dial (a network of a few nodes), is not joining.
func (g gossipNetwork) Joining() bool {
	return g.n.joining.Load() && g.n.OutboundCount() < g.n.cfg.Gossip.Router.Dlo
}

// Release implements gossip.Network.
func (g gossipNetwork) Release(peer session.NodeID) {
	if pid, err := g.n.peerManager(); err == nil {
		g.n.system.Root.Send(pid, &releasePeer{id: peer})
	}
}

// release stops keeping a connection the node kept only because topic discovery made it, now that the peer
// shares none of the relay's topics (gossip.Output.Release): the peer left the topic, the node did, or the peer
// had left it before it was found (its registration outlives its subscription). The connection becomes
// transient: closed once idle, or to make room.
func (m *peerManager) release(id session.NodeID) {
	e, ok := m.conns[id]
	if !ok || !e.pc.forTopics {
		return
	}
	e.pc.forTopics, e.pc.released = false, true
	if _, wanted := m.wanted[id]; wanted {
		return
	}
	e.pc.kept.Store(false)
	m.n.log.Debug().Str("peer", id.Short()).Msg("topic discovery's connection released: no topic in common")
	m.sweepSoon()
}

// Keep implements gossip.Network.
func (g gossipNetwork) Keep(peer session.NodeID) {
	if pid, err := g.n.peerManager(); err == nil {
		g.n.system.Root.Send(pid, &keepPeer{id: peer})
	}
}

// keepAgain undoes release: the peer shares one of the relay's topics again (it joined one, or the node did),
// and the relay gossips with it over the connection.
func (m *peerManager) keepAgain(id session.NodeID) {
	if e, ok := m.conns[id]; ok && e.pc.released {
		e.pc.released, e.pc.forTopics = false, true
		e.pc.kept.Store(true)
	}
}

// keepConn keeps a live connection from now on. For one that was transient (a lookup's), the peer is told if the
// node dialed it (peerConn.declareKept), and the relay greets the peer at once (gossip.Relay.Upgraded): the peer
// may hold it as transient, and close it once idle.
func (m *peerManager) keepConn(e *connEntry) {
	if e.pc.kept.Swap(true) {
		return
	}
	e.pc.declareKept()
	if m.n.relay != nil {
		m.n.relay.Upgraded(e.pc.id)
	}
}

// lookupDone tells the relay how a topic lookup it asked for ended (gossip.Relay.TopicLookupDone).
func (m *peerManager) lookupDone(topic string, register bool, err error) {
	if m.n.relay != nil {
		m.n.relay.TopicLookupDone(topic, register, err)
	}
}

// FindTopicPeers looks up in the DHT the nodes registered on topic: the nodes that joined it (Subscribe) where
// it is sparse around them, which register themselves every Gossip.Router.TopicRegisterInterval. The node's own
// relay does this by itself while a topic it joined has too few peers, and connects to some of them; this is for
// an application that wants to see or choose them. It does not register the node. An empty list means the nodes
// near the topic's key answered and hold no registration. Errors: ErrDiscoveryDisabled, gossip.ErrEmptyTopic,
// gossip.ErrTopicTooLong, gossip.ErrTopicNotUTF8, the lookup's (routing.ErrNoPeers when the node knows nobody,
// routing.ErrNoAnswer when no node it asked answered, routing.ErrTooManyLookups when Routing.MaxLookups are in
// progress), ErrClosed, ErrNotStarted, or ctx's error. The nodes named by more of the answerers closest to the topic's key come first (each
// adds 1/(r+1) for its rank r): an honest registration is held by the nodes near the key, a made-up one by whoever
// made it up.
func (n *Node) FindTopicPeers(ctx context.Context, topic string) ([]session.PeerAddr, error) {
	if topic == "" {
		return nil, fmt.Errorf("find topic peers: %w", gossip.ErrEmptyTopic)
	}
	if err := n.cfg.Gossip.Router.CheckTopic(topic); err != nil {
		return nil, fmt.Errorf("find topic peers: %w", err)
	}
	res, err := n.lookup(ctx, &routing.LookupRequest{Target: routing.TopicKey(topic), Topic: true})
	if err != nil {
		return nil, fmt.Errorf("find topic peers of %q: %w", topic, err)
	}
	out := make([]session.PeerAddr, len(res.Registered))
	for i, e := range res.Registered {
		out[i] = session.PeerAddr{ID: e.ID, Addr: e.Addr}
	}
	return out, nil
}

// maxKeepOnce bounds keepOnce: the entries of dials that failed stay until the peer connects or the set is full.
const maxKeepOnce = 256

// keepWithoutRedial marks a peer being dialed so that its connection is kept when it registers, without making
// it a wanted peer (redialed once lost).
func (m *peerManager) keepWithoutRedial(id session.NodeID) {
	if m.keepOnce == nil || len(m.keepOnce) >= maxKeepOnce {
		m.keepOnce = make(map[session.NodeID]struct{})
	}
	m.keepOnce[id] = struct{}{}
}
