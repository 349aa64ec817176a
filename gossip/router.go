package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// Errors of the Router.
var (
	// ErrNoPeers is returned by Publish when no peer is subscribed to the topic: nothing was sent.
	ErrNoPeers = errors.New("gossip: no peer in topic")
	// ErrDuplicate is returned by Publish when the message's id was already seen: nothing was sent.
	ErrDuplicate = errors.New("gossip: message already seen")
	// ErrUnknownPeer is returned when a peer was not added with AddPeer.
	ErrUnknownPeer = errors.New("gossip: unknown peer")
	// ErrLimit is returned when a Config limit (MaxPeers, MaxPeerTopics) is reached.
	ErrLimit = errors.New("gossip: limit reached")
)

// maxWantSources is how many announcers of a wanted message are remembered, to ask in turn.
const maxWantSources = 3

// Router is the gossip state of one node: joined topics, the peers and their subscriptions, the per-topic mesh,
// the seen-cache, the message cache, messages awaiting validation and outstanding IWANTs. See the package
// documentation. Time never goes backwards inside a Router: an earlier now than a previous call's counts as the
// latest one seen.
type Router struct {
	cfg     Config
	rng     *rand.Rand
	now     time.Time
	beats   uint64
	peers   map[session.NodeID]*peer
	topics  map[string]*topic // joined topics and topics with subscribed peers
	seen    seenCache
	cache   msgCache
	pending map[MsgID]*pending
	wants   map[MsgID]*want
	stats   Stats
}

type peer struct {
	topics  map[string]struct{}  // subscriptions, at most MaxPeerTopics
	backoff map[string]time.Time // topic → end of the backoff; keys are known topics
	penalty int                  // messages rejected so far
	ihaves  int                  // IHAVEs read this heartbeat
	served  int                  // messages served to IWANT this heartbeat
}

type topic struct {
	joined bool
	peers  []session.NodeID // subscribed peers, in subscription order
	mesh   []link
}

// link is a mesh link; an eager link carries full messages, a lazy one IHAVE only.
type link struct {
	id    session.NodeID
	eager bool
	dups  int // duplicates pushed over the link since it last delivered a first copy
}

type pending struct {
	msg  *Message
	from session.NodeID
	at   time.Time
}

// want is an outstanding IWANT: the announcers of the message, the number already asked and when the last was.
// It is kept, done, until IWantTimeout after the message arrived, to tell late answers from eager pushes.
type want struct {
	src  [maxWantSources]session.NodeID
	n    int
	next int
	at   time.Time
	done bool
}

func (w *want) addSource(id session.NodeID) {
	if w.n < len(w.src) && !slices.Contains(w.src[:w.n], id) {
		w.src[w.n] = id
		w.n++
	}
}

func (w *want) asked(id session.NodeID) bool { return slices.Contains(w.src[:w.next], id) }

// NewRouter returns a Router with the configuration cfg, drawing its random choices (graft and gossip targets) from
// rng; a nil rng means a randomly seeded one.
func NewRouter(cfg Config, rng *rand.Rand) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MsgID == nil {
		cfg.MsgID = DefaultMsgID
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Router{
		cfg:     cfg,
		rng:     rng,
		peers:   make(map[session.NodeID]*peer),
		topics:  make(map[string]*topic),
		seen:    newSeenCache(cfg.SeenMax, cfg.SeenTTL),
		cache:   newMsgCache(cfg.CacheMaxMessages, cfg.CacheMaxBytes),
		pending: make(map[MsgID]*pending),
		wants:   make(map[MsgID]*want),
	}, nil
}

// Stats returns the counters.
func (r *Router) Stats() Stats { return r.stats }

// MeshPeers returns the eager and the lazy mesh links of a topic.
func (r *Router) MeshPeers(name string) (eager, lazy []session.NodeID) {
	if t := r.topics[name]; t != nil {
		for _, l := range t.mesh {
			if l.eager {
				eager = append(eager, l.id)
			} else {
				lazy = append(lazy, l.id)
			}
		}
	}
	return eager, lazy
}

// AddPeer starts tracking a connected peer. It fails with ErrLimit beyond MaxPeers.
func (r *Router) AddPeer(id session.NodeID) error {
	if r.peers[id] != nil {
		return nil
	}
	if len(r.peers) >= r.cfg.MaxPeers {
		return fmt.Errorf("%w: %d peers", ErrLimit, r.cfg.MaxPeers)
	}
	r.peers[id] = &peer{topics: make(map[string]struct{})}
	return nil
}

// RemovePeer forgets a disconnected peer: its subscriptions, mesh links, backoffs and penalties.
func (r *Router) RemovePeer(id session.NodeID) {
	p := r.peers[id]
	if p == nil {
		return
	}
	for name := range p.topics {
		r.dropTopicPeer(name, id)
	}
	delete(r.peers, id)
}

// PeerSubscribed records that a peer subscribed to a topic. It fails with ErrUnknownPeer or, beyond
// MaxPeerTopics, ErrLimit.
func (r *Router) PeerSubscribed(id session.NodeID, name string) error {
	p := r.peers[id]
	if p == nil {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, id.Short())
	}
	if _, ok := p.topics[name]; ok {
		return nil
	}
	if len(p.topics) >= r.cfg.MaxPeerTopics {
		return fmt.Errorf("%w: %d topics for peer %s", ErrLimit, r.cfg.MaxPeerTopics, id.Short())
	}
	p.topics[name] = struct{}{}
	t := r.topic(name)
	t.peers = append(t.peers, id)
	return nil
}

// PeerUnsubscribed records that a peer left a topic, removing it from the mesh.
func (r *Router) PeerUnsubscribed(id session.NodeID, name string) {
	if p := r.peers[id]; p != nil {
		if _, ok := p.topics[name]; ok {
			delete(p.topics, name)
			r.dropTopicPeer(name, id)
		}
	}
}

func (r *Router) topic(name string) *topic {
	t := r.topics[name]
	if t == nil {
		t = &topic{}
		r.topics[name] = t
	}
	return t
}

func (r *Router) dropTopicPeer(name string, id session.NodeID) {
	t := r.topics[name]
	if t == nil {
		return
	}
	t.peers = slices.DeleteFunc(t.peers, func(p session.NodeID) bool { return p == id })
	t.mesh = slices.DeleteFunc(t.mesh, func(l link) bool { return l.id == id })
	if !t.joined && len(t.peers) == 0 {
		delete(r.topics, name)
	}
}

// Join subscribes the node to a topic and grafts up to D of the topic's peers. Announcing the subscription to the
// peers is the shell's job.
func (r *Router) Join(now time.Time, name string) Output {
	now = r.clock(now)
	var b builder
	if t := r.topic(name); !t.joined {
		t.joined = true
		r.graftUpTo(&b, name, t, now, r.cfg.D)
	}
	return b.result()
}

// Leave unsubscribes the node from a topic, pruning its mesh.
func (r *Router) Leave(now time.Time, name string) Output {
	now = r.clock(now)
	var b builder
	t := r.topics[name]
	if t == nil || !t.joined {
		return b.result()
	}
	for _, l := range t.mesh {
		r.prune(&b, name, l.id, now)
	}
	t.mesh, t.joined = nil, false
	if len(t.peers) == 0 {
		delete(r.topics, name)
	}
	return b.result()
}

// Publish sends a new message from this node: to the eager mesh links of its topic (grafting one back if none is
// eager) or, when the node has no mesh there, to up to D random peers of the topic; it is delivered locally too when the topic is joined. It sets msg.ID
// and msg.Hops, and fails with ErrNoPeers when no peer is subscribed to the topic, or ErrDuplicate when the id was
// seen already.
func (r *Router) Publish(now time.Time, msg *Message) (Output, error) {
	now = r.clock(now)
	t := r.topics[msg.Topic]
	if t == nil || len(t.peers) == 0 {
		return Output{}, fmt.Errorf("%w %q", ErrNoPeers, msg.Topic)
	}
	msg.ID, msg.Hops = r.cfg.MsgID(msg), 0
	if r.seen.has(msg.ID) {
		return Output{}, fmt.Errorf("%w: %s", ErrDuplicate, msg.ID)
	}
	r.seen.add(msg.ID, now)
	if w := r.wants[msg.ID]; w != nil {
		w.done = true
	}
	r.cache.add(&cached{msg: msg, at: now, beat: r.beats})
	r.stats.Published++
	var b builder
	out := msg.relayed()
	if t.joined && len(t.mesh) > 0 {
		if t.eagerCount() == 0 { // cut off from the tree: graft one mesh link back
			l := &t.mesh[r.rng.IntN(len(t.mesh))]
			l.eager = true
			r.sendGraft(&b, msg.Topic, l.id)
		}
		for _, l := range t.mesh {
			if l.eager {
				b.message(l.id, out)
			}
		}
	} else {
		for _, id := range r.sample(slices.Clone(t.peers), r.cfg.D) {
			b.message(id, out)
		}
	}
	if t.joined {
		b.out.Deliver = append(b.out.Deliver, msg)
		r.stats.Delivered++
	}
	return b.result(), nil
}

// HandleMessage takes a message received from a peer. It sets msg.ID. A new message is recorded as seen and held
// until Validated is called with its id (Status Pending); if it answers an IWANT, the link it came from is grafted.
// A duplicate that a mesh peer pushed turns that link lazy (a lazy Prune), unless it is the node's last eager link.
func (r *Router) HandleMessage(now time.Time, from session.NodeID, msg *Message) (Output, Status) {
	now = r.clock(now)
	t := r.topics[msg.Topic]
	if r.peers[from] == nil || t == nil || !t.joined {
		r.stats.Dropped++
		return Output{}, Dropped
	}
	msg.ID = r.cfg.MsgID(msg)
	var b builder
	if r.seen.has(msg.ID) {
		r.stats.Duplicates++
		r.duplicate(&b, t, msg, from)
		return b.result(), Duplicate
	}
	if len(r.pending) >= r.cfg.MaxPendingValidation {
		r.stats.Dropped++
		return Output{}, Dropped
	}
	r.seen.add(msg.ID, now)
	if w := r.wants[msg.ID]; w != nil && w.asked(from) {
		r.graftLink(&b, msg.Topic, t, from, now) // learned by IWANT: the tree has a hole here
	} else if i := t.meshIndex(from); i >= 0 {
		t.mesh[i].eager, t.mesh[i].dups = true, 0 // the peer pushed it, so it holds the link eager: agree
	}
	if w := r.wants[msg.ID]; w != nil {
		w.done, w.at = true, now
	}
	r.pending[msg.ID] = &pending{msg: msg, from: from, at: now}
	return b.result(), Pending
}

// duplicate applies the Plumtree prune for a duplicate msg received from a peer.
func (r *Router) duplicate(b *builder, t *topic, msg *Message, from session.NodeID) {
	if e := r.cache.get(msg.ID); e != nil {
		e.addHolder(from)
	}
	i := t.meshIndex(from)
	if i < 0 {
		return
	}
	if w := r.wants[msg.ID]; w != nil && w.asked(from) {
		return // a late answer to our IWANT, not a push
	}
	if l := &t.mesh[i]; l.eager {
		if l.dups++; l.dups < r.cfg.PruneDuplicates || t.eagerCount() < 2 {
			return // keep the last eager link: the first copy came another way
		}
		l.eager, l.dups = false, 0
	}
	// Also when the link is already lazy here: the peer pushing means it still thinks the link eager.
	c := b.control(from)
	c.Prune = append(c.Prune, Prune{Topic: msg.Topic, Lazy: true})
	r.stats.PrunesSent++
}

// Validated applies the verdict on a message that HandleMessage left pending: an accepted message is delivered,
// cached and pushed on the eager mesh links except to the peer it came from; a rejected one penalises that peer.
// Unknown or expired ids are ignored.
func (r *Router) Validated(now time.Time, id MsgID, v Verdict) Output {
	now = r.clock(now)
	var b builder
	pd := r.pending[id]
	if pd == nil {
		return b.result()
	}
	delete(r.pending, id)
	switch v {
	case Accept:
		r.accept(&b, pd, now)
	case Reject:
		r.stats.Rejected++
		n := 1
		if p := r.peers[pd.from]; p != nil {
			p.penalty++
			n = p.penalty
		}
		b.out.Penalize = append(b.out.Penalize, Penalty{Peer: pd.from, Count: n, Ban: n >= r.cfg.PenaltyThreshold})
	default:
		r.stats.Ignored++
	}
	return b.result()
}

func (r *Router) accept(b *builder, pd *pending, now time.Time) {
	t := r.topics[pd.msg.Topic]
	if t == nil || !t.joined {
		return
	}
	r.cache.add(&cached{msg: pd.msg, from: pd.from, at: now, beat: r.beats})
	b.out.Deliver = append(b.out.Deliver, pd.msg)
	r.stats.Delivered++
	var out *Message
	for _, l := range t.mesh {
		if l.eager && l.id != pd.from {
			if out == nil {
				out = pd.msg.relayed()
			}
			b.message(l.id, out)
		}
	}
}

// HandleControl takes control received from a peer; it is HandleIHave, HandleIWant, HandleGraft and HandlePrune
// for each of its entries, with their outputs merged.
func (r *Router) HandleControl(now time.Time, from session.NodeID, c *Control) Output {
	now = r.clock(now)
	var b builder
	for _, p := range c.Prune {
		r.handlePrune(now, from, p)
	}
	for _, g := range c.Graft {
		r.handleGraft(&b, now, from, g)
	}
	for _, ih := range c.IHave {
		r.handleIHave(&b, now, from, ih)
	}
	r.handleIWant(&b, from, c.IWant)
	return b.result()
}

// HandleIHave takes an announcement and asks (IWANT) for the announced messages not seen nor already asked for.
// It reads at most MaxIHaveLength ids per IHAVE and MaxIHaveMessages IHAVEs per peer and heartbeat, and only for
// joined topics.
func (r *Router) HandleIHave(now time.Time, from session.NodeID, ih IHave) Output {
	now = r.clock(now)
	var b builder
	r.handleIHave(&b, now, from, ih)
	return b.result()
}

func (r *Router) handleIHave(b *builder, now time.Time, from session.NodeID, ih IHave) {
	p, t := r.peers[from], r.topics[ih.Topic]
	if p == nil || t == nil || !t.joined || p.ihaves >= r.cfg.MaxIHaveMessages {
		return
	}
	p.ihaves++
	ids := ih.IDs[:min(len(ih.IDs), r.cfg.MaxIHaveLength)]
	r.stats.IHaveReceived += uint64(len(ids))
	for _, id := range ids {
		if r.seen.has(id) {
			if e := r.cache.get(id); e != nil {
				e.addHolder(from)
			}
			continue
		}
		w := r.wants[id]
		if w == nil {
			if len(r.wants) >= r.cfg.MaxPendingIWant {
				continue
			}
			w = &want{at: now}
			r.wants[id] = w
			w.addSource(from)
			r.ask(b, id, w, now)
			continue
		}
		w.addSource(from)
		if now.Sub(w.at) >= r.cfg.IWantTimeout {
			r.ask(b, id, w, now)
		}
	}
}

// ask sends an IWANT for id to the next announcer not asked yet. It reports false when none is left; when that
// announcer's IWANT is full, it sends nothing and the want is retried by a later heartbeat.
func (r *Router) ask(b *builder, id MsgID, w *want, now time.Time) bool {
	for ; w.next < w.n; w.next++ {
		src := w.src[w.next]
		if r.peers[src] == nil {
			continue
		}
		c := b.control(src)
		if len(c.IWant) >= r.cfg.MaxIHaveLength {
			return true
		}
		c.IWant = append(c.IWant, id)
		w.next++
		w.at = now
		r.stats.IWantSent++
		return true
	}
	return false
}

// HandleIWant answers a request with the cached messages asked for, at most MaxIHaveLength per request and
// MaxIWantReplies per peer and heartbeat.
func (r *Router) HandleIWant(now time.Time, from session.NodeID, ids []MsgID) Output {
	r.clock(now)
	var b builder
	r.handleIWant(&b, from, ids)
	return b.result()
}

func (r *Router) handleIWant(b *builder, from session.NodeID, ids []MsgID) {
	p := r.peers[from]
	if p == nil || len(ids) == 0 {
		return
	}
	ids = ids[:min(len(ids), r.cfg.MaxIHaveLength)]
	r.stats.IWantReceived += uint64(len(ids))
	for _, id := range ids {
		if p.served >= r.cfg.MaxIWantReplies {
			return
		}
		if e := r.cache.get(id); e != nil {
			p.served++
			r.stats.IWantServed++
			b.message(from, e.msg.relayed())
		}
	}
}

// HandleGraft takes a peer's graft: a mesh peer's link turns eager; another subscribed peer joins the mesh as an
// eager link, unless it is in backoff, which is answered by a Prune. Grafts for topics not joined are ignored.
func (r *Router) HandleGraft(now time.Time, from session.NodeID, topic string) Output {
	now = r.clock(now)
	var b builder
	r.handleGraft(&b, now, from, topic)
	return b.result()
}

func (r *Router) handleGraft(b *builder, now time.Time, from session.NodeID, name string) {
	r.stats.GraftsReceived++
	p, t := r.peers[from], r.topics[name]
	if p == nil || t == nil || !t.joined {
		return
	}
	if i := t.meshIndex(from); i >= 0 {
		t.mesh[i].eager = true
		return
	}
	if _, ok := p.topics[name]; !ok || r.backedOff(p, name, now) {
		r.prune(b, name, from, now)
		return
	}
	t.mesh = append(t.mesh, link{id: from, eager: true})
}

// HandlePrune takes a peer's prune: a lazy prune turns its mesh link lazy; a full prune removes it from the mesh
// and starts a PruneBackoff during which it is not grafted.
func (r *Router) HandlePrune(now time.Time, from session.NodeID, p Prune) Output {
	r.handlePrune(r.clock(now), from, p)
	return Output{}
}

func (r *Router) handlePrune(now time.Time, from session.NodeID, pr Prune) {
	r.stats.PrunesReceived++
	p, t := r.peers[from], r.topics[pr.Topic]
	if p == nil || t == nil {
		return
	}
	i := t.meshIndex(from)
	if pr.Lazy {
		if i >= 0 {
			t.mesh[i].eager = false
		}
		return
	}
	if i >= 0 {
		t.mesh = slices.Delete(t.mesh, i, i+1)
	}
	r.setBackoff(p, pr.Topic, now)
}

// Heartbeat runs the periodic work, to be called every HeartbeatInterval: it expires the seen-cache, the message
// cache, backoffs, verdicts not given within ValidationTimeout and unanswered IWANTs (asking the next announcer);
// per joined topic, it grafts random peers not in backoff up to D when the mesh is below Dlo and prunes down to D,
// lazy links first, when it is above Dhi; and it announces, by IHAVE to the lazy mesh links and to Dlazy random
// peers outside the mesh, the ids of the messages at least GossipDelay old that fewer than HistoryGossip heartbeats
// have announced.
func (r *Router) Heartbeat(now time.Time) Output {
	now = r.clock(now)
	r.beats++
	var b builder
	for _, p := range r.peers {
		p.ihaves, p.served = 0, 0
		maps.DeleteFunc(p.backoff, func(_ string, until time.Time) bool { return !now.Before(until) })
	}
	r.seen.expire(now)
	r.cache.expire(r.beats, r.cfg.HistoryLength)
	for id, pd := range r.pending {
		if now.Sub(pd.at) >= r.cfg.ValidationTimeout {
			delete(r.pending, id)
			r.stats.TimedOut++
			r.stats.Ignored++
		}
	}
	r.retryWants(&b, now)

	due := make(map[string][]*cached)
	for i := range r.cache.order.len() {
		if e := r.cache.order.at(i); e.announced < r.cfg.HistoryGossip && now.Sub(e.at) >= r.cfg.GossipDelay {
			due[e.msg.Topic] = append(due[e.msg.Topic], e)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.topics)) {
		if t := r.topics[name]; t.joined {
			r.maintain(&b, name, t, now)
			r.announce(&b, name, t, due[name])
		}
	}
	return b.result()
}

func (r *Router) retryWants(b *builder, now time.Time) {
	var due []MsgID
	for id, w := range r.wants {
		if now.Sub(w.at) >= r.cfg.IWantTimeout {
			due = append(due, id)
		}
	}
	slices.SortFunc(due, func(x, y MsgID) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range due {
		if w := r.wants[id]; w.done || !r.ask(b, id, w, now) {
			delete(r.wants, id)
		}
	}
}

// maintain keeps a topic's mesh between Dlo and Dhi.
func (r *Router) maintain(b *builder, name string, t *topic, now time.Time) {
	if len(t.mesh) < r.cfg.Dlo {
		r.graftUpTo(b, name, t, now, r.cfg.D)
	}
	if len(t.mesh) > r.cfg.Dhi {
		r.rng.Shuffle(len(t.mesh), func(i, j int) { t.mesh[i], t.mesh[j] = t.mesh[j], t.mesh[i] })
		slices.SortStableFunc(t.mesh, func(x, y link) int { // lazy links first
			switch {
			case x.eager == y.eager:
				return 0
			case y.eager:
				return -1
			default:
				return 1
			}
		})
		excess := len(t.mesh) - r.cfg.D
		for _, l := range t.mesh[:excess] {
			r.prune(b, name, l.id, now)
		}
		t.mesh = slices.Delete(t.mesh, 0, excess)
	}
}

func (r *Router) graftUpTo(b *builder, name string, t *topic, now time.Time, target int) {
	if len(t.mesh) >= target {
		return
	}
	var cands []session.NodeID
	for _, id := range t.peers {
		if t.meshIndex(id) < 0 && !r.backedOff(r.peers[id], name, now) {
			cands = append(cands, id)
		}
	}
	for _, id := range r.sample(cands, target-len(t.mesh)) {
		t.mesh = append(t.mesh, link{id: id, eager: true})
		r.sendGraft(b, name, id)
	}
}

// graftLink makes the link to a peer eager, adding it to the mesh if it is a subscribed peer not in backoff.
func (r *Router) graftLink(b *builder, name string, t *topic, id session.NodeID, now time.Time) {
	if i := t.meshIndex(id); i >= 0 {
		if !t.mesh[i].eager {
			t.mesh[i].eager = true
			r.sendGraft(b, name, id)
		}
		return
	}
	p := r.peers[id]
	if _, ok := p.topics[name]; !ok || r.backedOff(p, name, now) {
		return
	}
	t.mesh = append(t.mesh, link{id: id, eager: true})
	r.sendGraft(b, name, id)
}

func (r *Router) announce(b *builder, name string, t *topic, due []*cached) {
	if len(due) == 0 {
		return
	}
	due = due[:min(len(due), r.cfg.MaxIHaveLength)] // the rest waits for the next heartbeat
	var targets, others []session.NodeID
	for _, l := range t.mesh {
		if !l.eager {
			targets = append(targets, l.id)
		}
	}
	for _, id := range t.peers {
		if t.meshIndex(id) < 0 {
			others = append(others, id)
		}
	}
	targets = append(targets, r.sample(others, r.cfg.Dlazy)...)
	for _, to := range targets {
		ids := make([]MsgID, 0, len(due))
		for _, e := range due {
			if !e.held(to) {
				ids = append(ids, e.msg.ID)
			}
		}
		if len(ids) > 0 {
			c := b.control(to)
			c.IHave = append(c.IHave, IHave{Topic: name, IDs: ids})
			r.stats.IHaveSent += uint64(len(ids))
		}
	}
	for _, e := range due {
		e.announced++
	}
}

func (r *Router) sendGraft(b *builder, name string, to session.NodeID) {
	c := b.control(to)
	c.Graft = append(c.Graft, name)
	r.stats.GraftsSent++
}

// prune sends a full prune and starts the backoff of that peer on the topic.
func (r *Router) prune(b *builder, name string, to session.NodeID, now time.Time) {
	c := b.control(to)
	c.Prune = append(c.Prune, Prune{Topic: name})
	r.stats.PrunesSent++
	if p := r.peers[to]; p != nil {
		r.setBackoff(p, name, now)
	}
}

func (r *Router) setBackoff(p *peer, name string, now time.Time) {
	if p.backoff == nil {
		p.backoff = make(map[string]time.Time)
	}
	p.backoff[name] = now.Add(r.cfg.PruneBackoff)
}

func (r *Router) backedOff(p *peer, name string, now time.Time) bool {
	until, ok := p.backoff[name]
	return ok && now.Before(until)
}

// sample returns k random elements of ids (all of them if fewer), reordering ids.
func (r *Router) sample(ids []session.NodeID, k int) []session.NodeID {
	k = min(k, len(ids))
	for i := range k {
		j := i + r.rng.IntN(len(ids)-i)
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids[:k]
}

func (r *Router) clock(now time.Time) time.Time {
	if now.After(r.now) {
		r.now = now
	}
	return r.now
}

func (t *topic) meshIndex(id session.NodeID) int {
	return slices.IndexFunc(t.mesh, func(l link) bool { return l.id == id })
}

func (t *topic) eagerCount() int {
	n := 0
	for _, l := range t.mesh {
		if l.eager {
			n++
		}
	}
	return n
}

// builder accumulates an Output, with one Control per peer.
type builder struct {
	out Output
	ctl map[session.NodeID]*Control
}

func (b *builder) control(to session.NodeID) *Control {
	if c := b.ctl[to]; c != nil {
		return c
	}
	if b.ctl == nil {
		b.ctl = make(map[session.NodeID]*Control)
	}
	c := &Control{}
	b.ctl[to] = c
	b.out.Send = append(b.out.Send, Send{To: to, Control: c})
	return c
}

func (b *builder) message(to session.NodeID, m *Message) {
	b.out.Send = append(b.out.Send, Send{To: to, Msg: m})
}

// result returns the Output with all control ahead of the messages, each kind in the order it was added.
func (b *builder) result() Output {
	if len(b.ctl) > 0 {
		slices.SortStableFunc(b.out.Send, func(x, y Send) int {
			switch {
			case (x.Control == nil) == (y.Control == nil):
				return 0
			case x.Control != nil:
				return -1
			default:
				return 1
			}
		})
	}
	return b.out
}
