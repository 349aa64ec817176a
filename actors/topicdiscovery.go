package actors

// Topic discovery: the relay asks the node to register on a topic in the DHT and to connect to nodes registered
// on it (gossip.Output.Discover); the peer manager runs the lookups and keeps the connections.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

const (
	// maxTopicDiscoveries bounds the topic lookups in progress at once; a topic already being looked up, or one
	// over the bound, waits for the relay's next request.
	maxTopicDiscoveries = 4
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
	topic string
	want  int
	found []routing.Entry
	err   error
	from  *peerManager
}

// DiscoverTopic implements gossip.Network: a node without discovery ignores it.
func (g gossipNetwork) DiscoverTopic(topic string, register bool, want int) {
	if g.n.cfg.DisableDiscovery {
		return
	}
	if pid, err := g.n.peerManager(); err == nil {
		g.n.system.Root.Send(pid, &discoverTopic{topic: topic, register: register, want: want})
	}
}

// discoverTopic starts a topic lookup in a goroutine the peer manager owns, unless one runs for the topic already
// or maxTopicDiscoveries do.
func (m *peerManager) discoverTopic(d *discoverTopic) {
	if m.ctx.Err() != nil {
		return
	}
	if m.discovering == nil {
		m.discovering = make(map[string]struct{})
	}
	if _, busy := m.discovering[d.topic]; busy || len(m.discovering) >= maxTopicDiscoveries {
		m.n.log.Debug().Str("topic", d.topic).Msg("topic discovery skipped: one is in progress already")
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
		root.Send(self, &topicFound{topic: d.topic, want: d.want, found: res.Registered, err: err, from: m})
	}()
}

// topicFound connects to, and keeps, up to want of the registered nodes found that the node does not keep a
// connection to, drawn at random (a transient connection to one is kept from then on).
func (m *peerManager) topicFound(ctx actor.Context, f *topicFound) {
	delete(m.discovering, f.topic)
	if f.err != nil {
		m.n.log.Debug().Err(f.err).Str("topic", f.topic).Msg("topic lookup failed")
		return
	}
	m.n.log.Debug().Str("topic", f.topic).Int("registered", len(f.found)).Int("want", f.want).Msg("topic lookup done")
	now := time.Now()
	dialed := 0
	for _, i := range rand.Perm(len(f.found)) {
		if dialed >= f.want || m.ctx.Err() != nil {
			break
		}
		e := f.found[i]
		if e.ID == m.n.ID() || m.isHeld(e.ID, now) {
			continue
		}
		if c, connected := m.conns[e.ID]; connected {
			if !c.pc.kept.Swap(true) { // a transient connection (a lookup's): the relay takes it up at its next heartbeat
				dialed++
			}
			continue
		}
		if _, inProgress := m.dialing[e.ID]; inProgress {
			continue
		}
		m.n.addrs.put(e.ID, e.Addr)
		m.dial(ctx, &dialRequest{addr: session.PeerAddr{ID: e.ID, Addr: e.Addr}, keep: true})
		dialed++
	}
}

// FindTopicPeers looks up in the DHT the nodes registered on topic: the nodes that joined it (Subscribe) where
// it is sparse around them, which register themselves every Gossip.Router.TopicRegisterInterval. The node's own
// relay does this by itself while a topic it joined has too few peers, and connects to some of them; this is for
// an application that wants to see or choose them. It does not register the node. Errors: ErrDiscoveryDisabled,
// gossip.ErrEmptyTopic, gossip.ErrTopicTooLong, gossip.ErrTopicNotUTF8, the lookup's (routing.ErrNoPeers when
// the node knows nobody), ErrClosed, ErrNotStarted, or ctx's error.
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
