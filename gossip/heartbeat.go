package gossip

import (
	"bytes"
	"maps"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// Heartbeat runs the periodic work, to be called every HeartbeatInterval: it expires the seen-cache, the message
// cache, backoffs, verdicts not given within ValidationTimeout and unanswered IWANTs (asking the next announcer);
// per joined topic, it grafts random peers not in backoff up to D when the mesh is below Dlo and prunes down to D,
// lazy links first, when it is above Dhi; and it announces, by IHAVE to the lazy mesh links (each every
// MeshGossipBeats-th heartbeat) and to Dlazy random peers outside the mesh, the ids of the messages at least
// GossipDelay old that fewer than HistoryGossip heartbeats have announced (for the mesh links, HistoryGossip +
// MeshGossipBeats - 1); and it asks the shell to register on, or search the DHT for, topics with few peers
// (Output.Discover). After a heartbeat at which the node joined a topic, it asks the peers whose subscriptions
// went untracked (see PeerSubscribed) since it last asked them for them again (Output.Hello).
func (r *Router) Heartbeat(now time.Time) Output {
	now = r.clock(now)
	r.beats++
	r.stats.Heartbeats++
	for _, t := range r.topics {
		if t.tree != nil {
			t.tree.linksOK = false // reports go stale with the heartbeat count
		}
	}
	var b builder
	for id, p := range r.peers {
		if p.relayed {
			b.out.Relayed = append(b.out.Relayed, id)
			p.relayed = false
		}
		p.ihaves, p.asked, p.served, p.sent = 0, 0, 0, 0
		r.releaseSilent(id, p)
		maps.DeleteFunc(p.backoff, func(_ string, until time.Time) bool { return !now.Before(until) })
	}
	r.seen.expire(now)
	r.cache.expire(r.beats, r.cfg.HistoryLength)
	for id, pd := range r.pending {
		if now.Sub(pd.at) >= r.cfg.ValidationTimeout {
			r.unpend(id, pd)
			r.stats.TimedOut++
			r.stats.Ignored++
			r.unsee(&b, pd, now)
		}
	}
	slices.SortFunc(b.out.Relayed, func(x, y session.NodeID) int { return bytes.Compare(x[:], y[:]) })
	if r.joinedSince {
		// A topic joined since the last heartbeat may be among a peer's subscriptions that went untracked: the
		// node's hello again makes the peer send them all again (its echo), once a heartbeat whatever the joins.
		// The peer is no longer marked: its answer, its whole list, marks it again if some of it still goes
		// untracked (see peer.missed).
		r.joinedSince = false
		for id, p := range r.peers {
			if p.missed {
				p.missed = false
				b.out.Hello = append(b.out.Hello, id)
			}
		}
		slices.SortFunc(b.out.Hello, func(x, y session.NodeID) int { return bytes.Compare(x[:], y[:]) })
	}
	r.retryWants(&b, now)
	r.releaseDue(&b)

	// The joined topics in order (the peers' other topics, up to MaxPeers x MaxPeerTopics, are not sorted).
	names := r.names[:0]
	for name, t := range r.topics {
		if t.joined {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	r.collectDue(now)
	for _, name := range names {
		t := r.topics[name]
		r.maintain(&b, name, t, now)
		r.discover(&b, name, t, now)
		r.announce(&b, name, t, r.dueBy[name])
		if t.tree != nil {
			r.treeHeartbeat(&b, now, name, t) // last: an unchanged report rides on the control sent already
		}
	}
	clear(names)
	r.names = names[:0]
	return b.result()
}

// collectDue lists, by topic (Router.dueBy), the cached messages whose ids are to be announced now, oldest first,
// in buffers reused by the next heartbeat. One pass over the cache serves every topic: a pass per joined topic made
// the heartbeat grow with topics x cached messages (64 topics of 20 messages a heartbeat: 4-5 ms, over half of it
// in those passes; stop 58, an audit's finding). A topic with nothing due is dropped from the map, so that it holds
// the topics of the last heartbeat's announcements at most.
func (r *Router) collectDue(now time.Time) {
	if r.dueBy == nil {
		r.dueBy = make(map[string][]*cached)
	}
	for name, due := range r.dueBy {
		if len(due) == 0 {
			delete(r.dueBy, name)
			continue
		}
		clear(due)
		r.dueBy[name] = due[:0]
	}
	beats, delay := r.announceBeats(), int64(r.cfg.GossipDelay)
	for i := range r.cache.order.len() {
		if e := r.cache.order.at(i); e.announced < beats && now.UnixNano()-e.at >= delay {
			r.dueBy[e.msg.Topic] = append(r.dueBy[e.msg.Topic], e)
		}
	}
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
			if !w.done { // given up: no announcer answered (uncounted until stop 54)
				r.stats.IWantExpired++
			}
			r.dropWant(id, w)
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

// announceBeats is the number of heartbeats a message's id stays due for announcement: HistoryGossip for the random
// peers outside the mesh, and MeshGossipBeats-1 more so that each mesh link, which may hear only every
// MeshGossipBeats-th heartbeat, is offered it at its turn.
func (r *Router) announceBeats() int { return r.cfg.HistoryGossip + r.cfg.MeshGossipBeats - 1 }

// quietGossip tells whether the mesh links hear IHAVE only every MeshGossipBeats-th heartbeat: when the node has
// neither answered an IWANT nor pulled a message for HistoryLength heartbeats, so that nobody near it is repairing.
func (r *Router) quietGossip() bool {
	return r.cfg.MeshGossipBeats > 1 && r.beats-r.repairBeat > uint64(r.cfg.HistoryLength)
}

func (r *Router) announce(b *builder, name string, t *topic, due []*cached) {
	if len(due) == 0 {
		return
	}
	due = due[:min(len(due), r.cfg.MaxIHaveLength)] // the rest waits for the next heartbeat
	for _, e := range due {
		if e.announced == 0 {
			e.dueBeat = r.beats
		}
	}
	// Every mesh link hears, at its turn, of the messages that fell due since its last turn and that it does not
	// hold: lazy links, and eager links that joined the mesh after the message went out over it. Its turn is every
	// heartbeat, or every MeshGossipBeats-th while the gossip is quiet, at a phase drawn from its id so that the
	// links take turns. The random others hear of the messages due for the first HistoryGossip heartbeats.
	var targets, others []session.NodeID
	since := r.since[:0]
	p, quiet := uint64(r.cfg.MeshGossipBeats), r.quietGossip()
	for i := range t.mesh {
		if l := &t.mesh[i]; !quiet || (r.beats+holderKey(l.id))%p == 0 {
			targets, since = append(targets, l.id), append(since, l.gossiped)
			l.gossiped = r.beats
		}
	}
	r.since = since
	mesh := len(targets)
	for _, id := range t.peers {
		if t.meshIndex(id) < 0 {
			others = append(others, id)
		}
	}
	targets = append(targets, r.sample(others, r.cfg.Dlazy)...)
	buf := make([]MsgID, len(targets)*len(due)) // one allocation for every target's ids
	for i, to := range targets {
		ids := buf[:0:len(due)]
		buf = buf[len(due):]
		for _, e := range due {
			if e.held(to) {
				continue
			}
			if (i < mesh && e.dueBeat > since[i]) || (i >= mesh && e.announced < r.cfg.HistoryGossip) {
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
