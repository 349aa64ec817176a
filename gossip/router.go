package gossip

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
	"unicode/utf8"

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
	// ErrLimit is returned when a Config limit (MaxPeers, MaxPeerTopics) is reached: a peer past MaxPeers, a
	// peer's subscription past MaxPeerTopics, or a topic joined past MaxPeerTopics (Join).
	ErrLimit = errors.New("gossip: limit reached")
	// ErrTopicTooLong is returned for a topic name over Config.MaxTopicLength.
	ErrTopicTooLong = errors.New("gossip: topic name too long")
	// ErrTopicNotUTF8 is returned for a topic name that is not valid UTF-8: the wire carries topics as protobuf
	// strings, which must be, so no peer could be told of it.
	ErrTopicNotUTF8 = errors.New("gossip: topic name is not valid UTF-8")
)

// CheckTopic fails with ErrTopicTooLong for a topic name over MaxTopicLength and with ErrTopicNotUTF8 for one that
// is not valid UTF-8.
func (c Config) CheckTopic(name string) error {
	if len(name) > c.MaxTopicLength {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTopicTooLong, len(name), c.MaxTopicLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q", ErrTopicNotUTF8, name)
	}
	return nil
}

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
	// pendingBytes is the payload bytes of pending (MaxPendingValidationBytes).
	pendingBytes int
	wants        map[MsgID]*want
	// retained holds the penalties of departed peers (retainPenalty), at most MaxPeers of them.
	retained map[session.NodeID]retainedPenalty
	stats    Stats
	dueBy    map[string][]*cached // scratch of collectDue: the cached messages due for announcement, by topic
	names    []string             // scratch of Heartbeat: the joined topics
	signed   []byte               // scratch of the bytes of a tree beacon to sign or check (AppendBeaconSignedBytes)
	since    []uint64             // scratch of announce
	// checkFunds is, within HandleControlPaid, what is left of the sender's funds for beacon signature checks
	// (beaconCheckCost each); infinite outside it.
	checkFunds float64
	// repairBeat is the heartbeat count when the node last answered an IWANT or pulled a message (see
	// quietGossip).
	repairBeat uint64
	// joining is whether the node is still making its first connections (SetJoining): topic discovery waits.
	joining bool
	// joined is the number of joined topics, at most MaxPeerTopics (Join); joinedSince tells that one was joined
	// since the last heartbeat, which then asks the peers whose subscriptions went untracked (peer.missed) for them
	// again (Output.Hello).
	joined      int
	joinedSince bool
	// releasing lists the peers to release at the next heartbeat unless they share a joined topic by then
	// (peer.release releaseDue; each listed once, peer.listed, though a peer that disconnects and comes back
	// within a heartbeat may be listed again: the list is cleared on every heartbeat).
	releasing []session.NodeID
}

type peer struct {
	topics map[string]struct{} // subscriptions, at most MaxPeerTopics
	// missed is set when a subscription of the peer goes untracked: refused or evicted past MaxPeerTopics
	// (PeerSubscribed), or left unread by the shell (MissedSubscriptions). It costs the peer the node's hello again
	// after a heartbeat at which the node joined a topic (Output.Hello), which clears it: the peer answers with its
	// whole list, which sets it again if some of it still goes untracked. Until stop 60 it was never cleared, and a
	// peer once in more than MaxPeerTopics topics got the node's hello at every heartbeat after a join for good.
	missed  bool
	backoff map[string]time.Time // topic → end of the backoff; keys are known topics
	penalty int                  // messages rejected so far (kept across reconnects: Router.retained)
	ihaves  int                  // IHAVE messages read this heartbeat
	asked   int                  // ids asked of it by IWANT this heartbeat (Router.askLimit)
	served  int                  // messages served to IWANT this heartbeat
	wants   int                  // outstanding IWANTs of ids it announced first (want.src[0])
	sent    int                  // their bytes (Message.size)
	// validating counts its messages awaiting a verdict (pending), at most MaxPendingValidationPerPeer, and
	// validatingBytes their payload bytes (MaxPendingValidationBytesPerPeer).
	validating      int
	validatingBytes int
	// relayed: it was the first to deliver a message of another origin accepted since the last heartbeat
	// (Output.Relayed).
	relayed bool
	release releaseState // see PeerUpdated
	listed  bool         // in Router.releasing
	// heard is set once the peer's hello came (PeerUpdated); added is the heartbeat count when it was added. A
	// peer silent for silentReleaseBeats is released (releaseSilent).
	heard bool
	added uint64
	// beaconsUnpaid counts its tree reports' beacon checks left unpaid (HandleControlPaid): the start from which
	// its next RPC's reports are taken, moved by its own only.
	beaconsUnpaid uint64
}

type topic struct {
	joined bool
	peers  []session.NodeID // subscribed peers, in subscription order
	mesh   []link
	tree   *treeState // with Config.Tree, while joined
	disc   topicDiscovery
}

// link is a mesh link; an eager link carries full messages, a lazy one IHAVE only.
type link struct {
	id       session.NodeID
	eager    bool
	dups     int    // duplicates pushed over the link since it last delivered a first copy
	gossiped uint64 // the heartbeat count at the link's last IHAVE turn (see announce)
}

// NewRouter returns a Router with the configuration cfg, drawing its random choices (graft and gossip targets) from
// rng; a nil rng means a randomly seeded one.
func NewRouter(cfg Config, rng *rand.Rand) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MsgID == nil {
		cfg.MsgID = DefaultMsgID
	}
	if cfg.Tree && cfg.Self.IsZero() {
		return nil, fmt.Errorf("%w: Tree needs Self", ErrInvalidConfig)
	}
	if cfg.TreeVerify && (!cfg.Tree || cfg.TreeSign == nil) {
		return nil, fmt.Errorf("%w: TreeVerify needs Tree and TreeSign", ErrInvalidConfig)
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
		// The funds of a call without any: HandleTree, HandleControl.
		checkFunds: math.Inf(1),
	}, nil
}

// AddPeer starts tracking a connected peer. It fails with ErrLimit beyond MaxPeers.
func (r *Router) AddPeer(id session.NodeID) error {
	if r.peers[id] != nil {
		return nil
	}
	if len(r.peers) >= r.cfg.MaxPeers {
		return fmt.Errorf("%w: %d peers", ErrLimit, r.cfg.MaxPeers)
	}
	p := &peer{topics: make(map[string]struct{}), added: r.beats}
	// Its messages still awaiting their verdicts count against its share again: a peer that reconnected got a
	// fresh share, and four reconnections took every place (MaxPendingValidationPerPeer is per peer).
	for _, pd := range r.pending {
		if pd.from == id {
			p.validating++
			p.validatingBytes += pd.size
		}
	}
	for _, w := range r.wants { // likewise its share of the ids wanted (MaxPendingIWantPerPeer)
		if w.src[0] == id {
			p.wants++
		}
	}
	if rp, ok := r.retained[id]; ok {
		delete(r.retained, id)
		if r.now.Sub(rp.at) < r.cfg.PenaltyRetention { // the Router's clock: its last call's time
			p.penalty = rp.penalty
		}
	}
	r.peers[id] = p
	return nil
}

// RemovePeer forgets a disconnected peer: its subscriptions, mesh links and backoffs; its penalty is kept for
// PenaltyRetention, should it come back. With Tree, a node whose parent it was takes another at once and tells its
// topic peers (the Output).
func (r *Router) RemovePeer(now time.Time, id session.NodeID) Output {
	r.clock(now)
	p := r.peers[id]
	if p == nil {
		return Output{}
	}
	var b builder
	for name := range p.topics {
		r.dropTopicPeer(&b, name, id)
	}
	delete(r.peers, id)
	r.retainPenalty(id, p.penalty)
	return b.result()
}

// PeerSubscribed records that a peer subscribed to a topic. It fails with ErrUnknownPeer, ErrTopicTooLong or,
// beyond MaxPeerTopics, ErrLimit. A topic the node joined is always tracked: at MaxPeerTopics, one of the peer's
// topics the node has not joined makes room for it (there is one: the node joins at most MaxPeerTopics topics).
// Until stop 58 the peer's 65th topic was refused whatever it was, and a peer subscribed to more topics than that
// was invisible to the node in its later ones, shared or not. Only topics joined or subscribed to by a peer are
// known, so every other input naming a topic over MaxTopicLength finds none and is dropped.
func (r *Router) PeerSubscribed(id session.NodeID, name string) error {
	p := r.peers[id]
	if p == nil {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, id.Short())
	}
	if err := r.cfg.CheckTopic(name); err != nil {
		return err
	}
	if _, ok := p.topics[name]; ok {
		return nil
	}
	if len(p.topics) >= r.cfg.MaxPeerTopics && !r.evictUnjoined(id, p, name) {
		p.missed = true
		r.stats.SubscriptionsUntracked++
		return fmt.Errorf("%w: %d topics for peer %s", ErrLimit, r.cfg.MaxPeerTopics, id.Short())
	}
	p.topics[name] = struct{}{}
	t := r.topic(name)
	t.peers = append(t.peers, id)
	t.disc.peersChanged = r.now
	return nil
}

// evictUnjoined forgets one of p's topics that the node has not joined, to make room for name, a joined topic; it
// reports whether it did. The evicted topic counts as missed (peer.missed): should the node join it, the peer is
// asked for its subscriptions again.
func (r *Router) evictUnjoined(id session.NodeID, p *peer, name string) bool {
	if t := r.topics[name]; t == nil || !t.joined {
		return false
	}
	for other := range p.topics {
		if t := r.topics[other]; t == nil || !t.joined {
			delete(p.topics, other)
			var b builder // a topic not joined has no mesh nor tree: nothing to send
			r.dropTopicPeer(&b, other, id)
			p.missed = true
			r.stats.SubscriptionsUntracked++
			return true
		}
	}
	return false
}

// MissedSubscriptions records that the shell left n of a peer's subscriptions unread (they named topics the node
// had not joined, past what it reads of an RPC), counted in Stats.SubscriptionsUntracked: should the node join a
// topic, the peer is asked for them again at the next heartbeat (Output.Hello). An n under 1 records nothing. Not
// inlined: inlined, it grew the frame of the relay's handleSubscriptions, under handleRPC (see handleRPC).
//
//go:noinline
func (r *Router) MissedSubscriptions(id session.NodeID, n int) {
	if p := r.peers[id]; p != nil && n > 0 {
		p.missed = true
		r.stats.SubscriptionsUntracked += uint64(n)
	}
}

// PeerUnsubscribed records that a peer left a topic, removing it from the mesh and the tree (see RemovePeer). A
// peer that shares no joined topic with the node any more is released at the next heartbeat (see PeerUpdated).
func (r *Router) PeerUnsubscribed(now time.Time, id session.NodeID, name string) Output {
	r.clock(now)
	var b builder
	if p := r.peers[id]; p != nil {
		if _, ok := p.topics[name]; ok {
			delete(p.topics, name)
			r.dropTopicPeer(&b, name, id)
			r.releaseUnlessShared(id, p)
		}
	}
	return b.result()
}

func (r *Router) topic(name string) *topic {
	t := r.topics[name]
	if t == nil {
		t = &topic{}
		r.topics[name] = t
	}
	return t
}

func (r *Router) dropTopicPeer(b *builder, name string, id session.NodeID) {
	t := r.topics[name]
	if t == nil {
		return
	}
	t.peers = slices.DeleteFunc(t.peers, func(p session.NodeID) bool { return p == id })
	t.disc.peersChanged = r.now
	t.mesh = slices.DeleteFunc(t.mesh, func(l link) bool { return l.id == id })
	if ts := t.tree; ts != nil {
		ts.linksOK = false
		delete(ts.views, id)
		r.lostPeer(ts, id)
		if ts.parent == id {
			// Cut off from the tree: another parent now, or the messages of the next heartbeat miss the subtree.
			r.updateTree(b, name, t)
		}
	}
	if !t.joined {
		if p := r.peers[id]; p != nil {
			delete(p.backoff, name) // gates no graft, and would outlive the topic
		}
		if len(t.peers) == 0 {
			delete(r.topics, name)
		}
	}
}

// Join subscribes the node to a topic and grafts up to D of the topic's peers. Announcing the subscription to the
// peers is the shell's job. It fails with ErrTopicTooLong or ErrTopicNotUTF8 (CheckTopic), and with ErrLimit for a
// topic past MaxPeerTopics joined ones: a peer tracks at most MaxPeerTopics topics of the node, so that two nodes
// share at most that many (and an RPC's control names at most that many of each kind, controlFromWire).
func (r *Router) Join(now time.Time, name string) (Output, error) {
	now = r.clock(now)
	var b builder
	if err := r.cfg.CheckTopic(name); err != nil {
		return b.result(), err
	}
	if t := r.topics[name]; t == nil || !t.joined {
		if r.joined >= r.cfg.MaxPeerTopics {
			return b.result(), fmt.Errorf("%w: the node is in %d topics already (MaxPeerTopics)", ErrLimit, r.joined)
		}
		t = r.topic(name)
		t.joined = true
		r.joined++
		r.joinedSince = true
		t.disc = topicDiscovery{from: now.Add(max(r.cfg.TopicSearchInterval, r.cfg.HeartbeatInterval))}
		if r.cfg.Tree {
			t.tree = r.newTree(now)
		}
		r.graftUpTo(&b, name, t, now, r.cfg.D)
		for _, id := range t.peers {
			r.keepIfShared(&b, id, r.peers[id])
		}
	}
	return b.result(), nil
}

// Leave unsubscribes the node from a topic, pruning its mesh. The topic's peers that share no other joined topic
// with the node are released at the next heartbeat unless they do by then (see PeerUpdated).
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
	t.mesh, t.joined, t.tree = nil, false, nil
	r.joined--
	for _, id := range t.peers {
		r.releaseUnlessShared(id, r.peers[id])
	}
	if len(t.peers) == 0 {
		delete(r.topics, name)
	}
	return b.result()
}

// Publish sends a new message from this node: with Tree, to its tree links and up to PublishFanout other topic
// peers; otherwise to the eager mesh links of its topic (grafting one back if none is eager); and when the node has
// neither, to up to D random peers of the topic. It is delivered locally too when the topic is joined. It sets msg.ID
// and msg.Hops, and fails with ErrNoPeers when no peer is subscribed to the topic, or ErrDuplicate when the id was
// seen already (and with ErrTopicTooLong for a topic over MaxTopicLength).
func (r *Router) Publish(now time.Time, msg *Message) (Output, error) {
	now = r.clock(now)
	if err := r.cfg.CheckTopic(msg.Topic); err != nil {
		return Output{}, err
	}
	t := r.topics[msg.Topic]
	if t == nil || len(t.peers) == 0 {
		return Output{}, fmt.Errorf("%w %q", ErrNoPeers, msg.Topic)
	}
	msg.ID, msg.Hops = r.cfg.MsgID(msg), 0
	if r.Seen(msg.ID) {
		return Output{}, fmt.Errorf("%w: %s", ErrDuplicate, msg.ID)
	}
	r.seen.add(msg.ID, now)
	if w := r.wants[msg.ID]; w != nil {
		w.done = true
	}
	e := newCached(msg, session.NodeID{}, now, r.beats)
	r.cache.add(e)
	r.stats.Published++
	var b builder
	out := msg.relayed()
	if tl := r.treeLinks(t); len(tl) > 0 {
		for _, id := range tl {
			b.message(id, out)
			e.addHolder(id)
			r.rideReport(&b, msg.Topic, t, id)
		}
		cross := r.crossLinks(t)
		for _, id := range cross {
			b.message(id, out)
			e.addHolder(id)
			r.stats.TreeCrossed++
		}
		if r.cfg.PublishFanout > 0 {
			others := slices.DeleteFunc(slices.Clone(t.peers), func(id session.NodeID) bool {
				return slices.Contains(tl, id) || slices.Contains(cross, id)
			})
			for _, id := range r.sample(others, r.cfg.PublishFanout) {
				b.message(id, out)
				e.addHolder(id)
			}
		}
	} else if t.joined && len(t.mesh) > 0 {
		if t.eagerCount() == 0 { // cut off from the tree: graft one mesh link back
			l := &t.mesh[r.rng.IntN(len(t.mesh))]
			l.eager = true
			r.sendGraft(&b, msg.Topic, l.id)
		}
		for _, l := range t.mesh {
			if l.eager {
				b.message(l.id, out)
				e.addHolder(l.id)
			}
		}
	} else {
		for _, id := range r.sample(slices.Clone(t.peers), r.cfg.D) {
			b.message(id, out)
			e.addHolder(id)
		}
	}
	if t.joined {
		b.out.Deliver = append(b.out.Deliver, msg)
		r.stats.Delivered++
	}
	return b.result(), nil
}

// HandleMessage takes a message received from a peer. It sets msg.ID, unless MessageID did (msg must not change
// in between: the shell asks for the id first to skip verifying a message it has seen). A new message is recorded as seen and held
// until Validated is called with its id (Status Pending); if it answers an IWANT, the link it came from is grafted
// once the message is accepted.
// A copy that comes while one is pending is a duplicate; should the pending one not be accepted, it is asked for.
// A message outside the freshness window (see Config.MaxClockSkew) is dropped, not recorded as seen, and counted in
// Stats.Stale.
// A duplicate that a mesh peer pushed turns that link lazy (a lazy Prune), unless it is the node's last eager link.
func (r *Router) HandleMessage(now time.Time, from session.NodeID, msg *Message) (Output, Status) {
	now = r.clock(now)
	if !r.Takes(from, msg.Topic) {
		r.stats.Dropped++
		return Output{}, Dropped
	}
	t := r.topics[msg.Topic]
	if !msg.idSet {
		msg.ID = r.cfg.MsgID(msg)
	}
	var b builder
	if r.Seen(msg.ID) {
		r.stats.Duplicates++
		if pd := r.pending[msg.ID]; pd != nil {
			pd.addAlt(from)
		}
		r.duplicate(&b, t, msg, from)
		return b.result(), Duplicate
	}
	if !r.timely(now, msg) {
		r.stats.Dropped++
		r.stats.Stale++
		return Output{}, Dropped
	}
	if !r.pendingRoom(r.peers[from], len(msg.Data)) {
		r.stats.Dropped++
		return Output{}, Dropped
	}
	r.seen.add(msg.ID, now)
	pulled := false
	if w := r.wants[msg.ID]; w != nil {
		pulled = w.asked(from)
		w.done, w.at = true, now
	}
	// A pulled message grafts its link once accepted (accept); a pushed one tells that the peer holds the link eager.
	if i := t.meshIndex(from); i >= 0 && t.tree == nil && !pulled {
		t.mesh[i].eager, t.mesh[i].dups = true, 0 // the peer pushed it, so it holds the link eager: agree
	}
	r.pending[msg.ID] = &pending{msg: msg, from: from, at: now, pulled: pulled, size: len(msg.Data)}
	r.pendingBytes += len(msg.Data)
	r.peers[from].validating++
	r.peers[from].validatingBytes += len(msg.Data)
	return b.result(), Pending
}

// pendingRoom tells whether a message of size bytes from p may await its verdict: within the counts and the bytes
// of MaxPendingValidation and MaxPendingValidationBytes, in all and for p. A message is always taken when nothing
// of p's, or nothing at all, is pending, so a message of any size the relay takes can be validated.
func (r *Router) pendingRoom(p *peer, size int) bool {
	switch {
	case len(r.pending) >= r.cfg.MaxPendingValidation || p.validating >= r.cfg.MaxPendingValidationPerPeer:
		return false
	case len(r.pending) > 0 && r.pendingBytes+size > r.cfg.MaxPendingValidationBytes:
		return false
	case p.validating > 0 && p.validatingBytes+size > r.cfg.MaxPendingValidationBytesPerPeer:
		return false
	}
	return true
}

// timely tells whether m is within the freshness window at now: its OriginTime at most MaxClockSkew ahead and
// less than SeenTTL - MaxClockSkew old. Any copy taken is then taken while the id of a copy seen before is still
// remembered (for SeenTTL from when it was seen, at least OriginTime - MaxClockSkew), so a replay is a duplicate
// or dropped.
func (r *Router) timely(now time.Time, m *Message) bool {
	age := now.UnixNano() - m.OriginTime
	return age >= -int64(r.cfg.MaxClockSkew) && age < int64(r.cfg.SeenTTL-r.cfg.MaxClockSkew)
}

// Timely tells whether m is within the freshness window (Config.MaxClockSkew) at now; HandleMessage drops it
// otherwise, so the shell need not check its signature.
func (r *Router) Timely(now time.Time, m *Message) bool { return r.timely(r.clock(now), m) }

// duplicate applies the Plumtree prune for a duplicate msg received from a peer.
func (r *Router) duplicate(b *builder, t *topic, msg *Message, from session.NodeID) {
	if e := r.cache.get(msg.ID); e != nil {
		e.addHolder(from)
	}
	i := t.meshIndex(from)
	if i < 0 || t.tree != nil {
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
// The id of a message rejected or ignored is forgotten (see unsee). Unknown or expired ids are ignored.
func (r *Router) Validated(now time.Time, id MsgID, v Verdict) Output {
	return r.validated(now, id, nil, v, false)
}

// validated is Validated; with m set, the verdict applies only if m is the copy pending: a verdict that came too
// late, after another copy of the same id became pending, is ignored. timedOut tells that the validators' time
// (ValidationTimeout) ran out: the message is ignored whatever v, and counted in TimedOut as well as Ignored, as
// when the heartbeat expires it.
func (r *Router) validated(now time.Time, id MsgID, m *Message, v Verdict, timedOut bool) Output {
	now = r.clock(now)
	var b builder
	pd := r.pending[id]
	if pd == nil || m != nil && pd.msg != m {
		return b.result()
	}
	r.unpend(id, pd)
	if timedOut {
		v = Ignore
		r.stats.TimedOut++
	}
	switch v {
	case Accept:
		r.accept(&b, pd, now)
	case Reject:
		r.stats.Rejected++
		b.out.Penalize = append(b.out.Penalize, r.penalty(pd.from, ""))
		r.unsee(&b, pd, now)
	default:
		r.stats.Ignored++
		r.unsee(&b, pd, now)
	}
	return b.result()
}

func (r *Router) accept(b *builder, pd *pending, now time.Time) {
	t := r.topics[pd.msg.Topic]
	if t == nil || !t.joined {
		return
	}
	e := newCached(pd.msg, pd.from, now, r.beats)
	r.cache.add(e)
	if p := r.peers[pd.from]; p != nil && pd.from != pd.msg.Origin { // its own publications earn nothing
		p.relayed = true
	}
	if pd.pulled {
		r.repairBeat = r.beats
		if t.tree == nil && r.peers[pd.from] != nil {
			// Learned by IWANT: the eager links have a hole here. Grafted only now: a copy that validation
			// rejects must not make its sender an eager link (until stop 58 the graft came with the copy).
			r.graftLink(b, pd.msg.Topic, t, pd.from, now)
		}
	}
	b.out.Deliver = append(b.out.Deliver, pd.msg)
	r.stats.Delivered++
	var out *Message
	push := func(id session.NodeID) {
		if id == pd.from {
			return
		}
		if out == nil {
			out = pd.msg.relayed()
		}
		b.message(id, out)
		e.addHolder(id)
		r.rideReport(b, pd.msg.Topic, t, id)
	}
	if t.tree != nil {
		if r.noteRepaired(t, pd.from, pd.pulled, r.fromLesserTree(t, pd.from)) {
			r.updateTree(b, pd.msg.Topic, t)
		}
		for _, id := range r.treeLinks(t) {
			push(id)
		}
		for _, id := range r.crossLinks(t) {
			push(id)
			r.stats.TreeCrossed++
		}
		return
	}
	for _, l := range t.mesh {
		if l.eager {
			push(l.id)
		}
	}
}

// MessageID sets m.ID to the id Config.MsgID gives m and returns it; HandleMessage then takes that id as it is.
func (r *Router) MessageID(m *Message) MsgID {
	m.ID, m.idSet = r.cfg.MsgID(m), true
	return m.ID
}

// Seen tells whether a message with this id was published, received or pulled within the seen-cache's bounds,
// or awaits its verdict: a pending id is seen even once the seen-cache, bounded in count, has forgotten it (SeenMax
// new ids within ValidationTimeout). A second copy then replaced the first in pending, whose bytes and peer's place
// were never given back, and a Publish of the same payload was delivered twice.
func (r *Router) Seen(id MsgID) bool { return r.seen.has(id) || r.pending[id] != nil }

// Takes tells whether HandleMessage would look at a message of topic from peer: the peer is known and the topic
// joined. The shell checks a signature only then (a message it drops is never recorded as seen, so each replay
// of one cost a check).
func (r *Router) Takes(from session.NodeID, topic string) bool {
	t := r.topics[topic]
	return r.peers[from] != nil && t != nil && t.joined
}

// carrySeen returns the ids the Router has seen, oldest first, less those awaiting a verdict (which a successor
// would never deliver, its validators' verdicts being lost): what a restarted relay's next Router starts from
// (inheritSeen), so that its subscribers do not get again what they got.
func (r *Router) carrySeen() []seenEntry {
	return slices.DeleteFunc(r.seen.live(), func(e seenEntry) bool { return r.pending[e.id] != nil })
}

// inheritSeen records the ids of a predecessor's carrySeen that are not expired at now, with their times.
func (r *Router) inheritSeen(entries []seenEntry, now time.Time) {
	now = r.clock(now)
	for _, e := range entries {
		if at := time.Unix(0, e.at); now.Sub(at) < r.cfg.SeenTTL && !r.seen.has(e.id) {
			r.seen.add(e.id, at)
		}
	}
}

// unpend forgets pending message id, whose verdict came or timed out.
func (r *Router) unpend(id MsgID, pd *pending) {
	delete(r.pending, id)
	r.pendingBytes -= pd.size
	if p := r.peers[pd.from]; p != nil && p.validating > 0 { // 0: the peer left and came back meanwhile
		p.validating--
		p.validatingBytes = max(0, p.validatingBytes-pd.size)
	}
}
