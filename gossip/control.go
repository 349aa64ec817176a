package gossip

import (
	"math"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// HandleControl takes control received from a peer; it is HandleIHave, HandleIWant, HandleGraft, HandlePrune and
// HandleTree for each of its entries, with their outputs merged. Of several tree reports for one topic, only the
// last counts: the peer's place now (a peer that listed 64 places of one topic made the node choose its own place
// 64 times per RPC). Its sender pays for no beacon signature check: see HandleControlPaid.
func (r *Router) HandleControl(now time.Time, from session.NodeID, c *Control) Output {
	funds := math.Inf(1)
	return r.HandleControlPaid(now, from, c, &funds)
}

// HandleControlPaid is HandleControl for a sender whose control budget holds *funds units (RelayConfig.PeerControlRate)
// for the beacon signature checks its tree reports call for (Config.TreeVerify): each check done costs
// beaconCheckCost, taken from *funds, and a report whose check the funds left cannot pay waits for a later report,
// as one past maxBeaconChecksPerBeat does. The shell takes what was spent from the budget. Before stop 59 a
// check cost nothing but its report's unit: a peer signing made-up beacons held the relay 13-18 ms a second with
// checks, in 64 topics. The shell calls it rather than HandleControl, whose frame would add to the relay
// goroutine's deepest path (see handleRPC).
func (r *Router) HandleControlPaid(now time.Time, from session.NodeID, c *Control, funds *float64) Output {
	now = r.clock(now)
	r.checkFunds = *funds
	var b builder
	for _, p := range c.Prune {
		r.handlePrune(now, from, p)
	}
	for _, g := range c.Graft {
		r.handleGraft(&b, now, from, g)
	}
	if len(c.IHave) > 0 {
		// The IHAVEs of one RPC are one IHAVE message, as gossipsub counts them: counted per entry, a peer
		// announcing more than MaxIHaveMessages topics at a heartbeat had the others' announcements ignored, every
		// heartbeat, and their holes never repaired (until stop 58).
		over := r.ihaveMessage(from)
		for _, ih := range c.IHave {
			r.handleIHave(&b, now, from, ih, over)
		}
	}
	if n := uint64(max(c.IHaveUnread, 0)); n > 0 && r.peers[from] != nil {
		// The IHAVEs the decoder left (past MaxPeerTopics): counted nowhere until stop 58.
		r.stats.IHaveReceived += n
		r.stats.IHaveIgnored += n
	}
	r.handleIWant(&b, from, c.IWant, c.IWantUnread)
	// The reports are taken from a start that moves on with each of the peer's checks left unpaid (the topics are
	// independent): from the first, the funds ran out at the same topics of an honest peer's every report in 64
	// topics, whose roots' beacons were then never taken. It moves with the peer's own count: with the node's, a
	// peer leaving checks unpaid on purpose set the start of another's reports (a review's finding).
	for k, end := r.reportTurn(&from, len(c.Tree)); k < end; k++ {
		i := k % len(c.Tree)
		if ti := c.Tree[i]; !reportedAgain(c.Tree[i+1:], ti.Topic) { // a topic's last report in the RPC is the peer's place
			r.handleTree(&b, from, ti)
		}
	}
	*funds, r.checkFunds = r.checkFunds, math.Inf(1)
	return b.result()
}

// reportTurn returns the turn over peer from's n tree reports that HandleControlPaid takes, start to end (start+n;
// a report's index is k%n): start is its beacon checks left unpaid so far, modulo n (0 for a peer not known, whose
// reports are not taken). Not inlined: its temporaries stayed on HandleControlPaid's frame, on the relay
// goroutine's deepest path (see handleRPC).
//
//go:noinline
func (r *Router) reportTurn(from *session.NodeID, n int) (start, end int) {
	if p := r.peers[*from]; p != nil && n > 0 {
		start = int(p.beaconsUnpaid % uint64(n))
	}
	return start, start + n
}

// reportedAgain tells whether reports holds one for topic.
func reportedAgain(reports []TreeInfo, topic string) bool {
	for _, ti := range reports {
		if ti.Topic == topic {
			return true
		}
	}
	return false
}

// HandleIHave takes an announcement, an IHAVE message of one topic, and asks (IWANT) for the announced messages
// not seen nor already asked for. It reads at most MaxIHaveLength ids per IHAVE and MaxIHaveMessages IHAVE
// messages per peer and heartbeat (HandleControl's IHAVEs are one message), and only for joined topics; it asks for
// at most MaxPendingIWant ids at once, MaxPendingIWantPerPeer of them announced first by one peer.
func (r *Router) HandleIHave(now time.Time, from session.NodeID, ih IHave) Output {
	now = r.clock(now)
	var b builder
	r.handleIHave(&b, now, from, ih, r.ihaveMessage(from))
	return b.result()
}

// ihaveMessage counts an IHAVE message from a peer against its MaxIHaveMessages of the heartbeat, reporting
// whether it is over them (its ids are then ignored).
func (r *Router) ihaveMessage(from session.NodeID) (over bool) {
	p := r.peers[from]
	if p == nil || p.ihaves >= r.cfg.MaxIHaveMessages {
		return true
	}
	p.ihaves++
	return false
}

// handleIHave is HandleIHave for one IHAVE of a message, over its peer's MaxIHaveMessages or not.
func (r *Router) handleIHave(b *builder, now time.Time, from session.NodeID, ih IHave, over bool) {
	p, t := r.peers[from], r.topics[ih.Topic]
	if p == nil || t == nil || !t.joined {
		return
	}
	r.stats.IHaveReceived += uint64(len(ih.IDs) + max(ih.Unread, 0))
	// The ids the decoder left (stop 55; counted nowhere before).
	r.stats.IHaveIgnored += uint64(max(ih.Unread, 0))
	if over { // not even counted as received until stop 54
		r.stats.IHaveIgnored += uint64(len(ih.IDs))
		return
	}
	ids := ih.IDs[:min(len(ih.IDs), r.cfg.MaxIHaveLength)]
	r.stats.IHaveIgnored += uint64(len(ih.IDs) - len(ids))
	for _, id := range ids {
		if e := r.cache.get(id); e != nil { // cached implies seen: most ids announced are of recent messages
			e.addHolder(from)
			continue
		}
		if r.seen.has(id) {
			if pd := r.pending[id]; pd != nil { // asked for should the copy awaiting its verdict fail it
				pd.addAlt(from)
			}
			continue
		}
		w := r.wants[id]
		if w == nil {
			if w = r.newWant(id, from, now); w != nil {
				r.ask(b, id, w, now)
			} else {
				r.stats.IHaveIgnored++ // MaxPendingIWant, or the announcer's share of it
			}
			continue
		}
		w.addSource(from)
		if now.Sub(w.at) >= r.cfg.IWantTimeout {
			r.ask(b, id, w, now)
		}
	}
}

// ask sends an IWANT for id to the next announcer not asked yet. It reports false when none is left; when that
// announcer's IWANT is full, or it was asked askLimit ids this heartbeat, it sends nothing and the want is retried
// by a later heartbeat.
func (r *Router) ask(b *builder, id MsgID, w *want, now time.Time) bool {
	for ; w.next < w.n; w.next++ {
		src := w.src[w.next]
		p := r.peers[src]
		if p == nil {
			continue
		}
		c := b.control(src)
		if len(c.IWant) >= r.cfg.MaxIHaveLength || p.asked >= r.askLimit() {
			return true
		}
		p.asked++
		c.IWant = append(c.IWant, id)
		w.next++
		w.at = now
		r.stats.IWantSent++
		return true
	}
	return false
}

// askLimit is the most ids asked of one peer per heartbeat: half what a peer serves one asker per heartbeat
// (MaxIWantReplies, the same config assumed on both ends), since the two heartbeats are not in phase and two of
// this node's can fall in one of the peer's. An id asked past it was refused (IWantLimited there) and never
// delivered when the peer was its only announcer: two nodes repairing 20 topics of 20 messages each lost 144 of
// the 400 (until stop 58).
func (r *Router) askLimit() int { return max(1, r.cfg.MaxIWantReplies/2) }

// HandleIWant answers a request with the cached messages asked for, at most MaxIHaveLength per request, and
// MaxIWantReplies messages and MaxIWantReplyBytes bytes per peer and heartbeat; one message goes to a peer at most
// maxIWantServes times, and to MaxPeers peers at most.
func (r *Router) HandleIWant(now time.Time, from session.NodeID, ids []MsgID) Output {
	r.clock(now)
	var b builder
	r.handleIWant(&b, from, ids, 0)
	return b.result()
}

// handleIWant answers ids; unread counts the ids of the IWANT its decoder did not read, counted as limited.
func (r *Router) handleIWant(b *builder, from session.NodeID, ids []MsgID, unread int) {
	p := r.peers[from]
	if p == nil || len(ids) == 0 && unread <= 0 {
		return
	}
	if unread > 0 { // left by the decoder (stop 55; uncounted before)
		r.stats.IWantReceived += uint64(unread)
		r.stats.IWantLimited += uint64(unread)
	}
	r.stats.IWantReceived += uint64(len(ids))
	r.stats.IWantLimited += uint64(len(ids) - min(len(ids), r.cfg.MaxIHaveLength))
	ids = ids[:min(len(ids), r.cfg.MaxIHaveLength)]
	// Every id is counted once: served, repeated, uncached or limited (until stop 54 only those served or
	// repeated were, and an IWANT the node could not answer looked answered).
	for i, id := range ids {
		if p.served >= r.cfg.MaxIWantReplies {
			r.stats.IWantLimited += uint64(len(ids) - i)
			return
		}
		e := r.cache.get(id)
		if e == nil {
			r.stats.IWantUncached++
			continue
		}
		size := e.msg.size()
		if p.sent+size > r.cfg.MaxIWantReplyBytes {
			r.stats.IWantLimited++
			continue
		}
		if ok, repeated := e.serveIWant(from, r.cfg.MaxPeers); !ok {
			if repeated {
				r.stats.IWantRepeated++
			} else { // MaxPeers others asked already: counted in IWantRepeated until stop 54
				r.stats.IWantLimited++
			}
			continue
		}
		p.served++
		p.sent += size
		r.stats.IWantServed++
		r.repairBeat = r.beats
		b.message(from, e.msg.relayed())
	}
}

// HandleGraft takes a peer's graft: a mesh peer's link turns eager; another subscribed peer joins the mesh as an
// eager link, unless it is in backoff, which is answered by a Prune (as is a peer not subscribed to the topic: one
// per topic and at most MaxPeerTopics in the Output of one HandleControl). Grafts for topics not joined are
// ignored.
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
		// One prune per topic, at most MaxPeerTopics per reply: the reply does not grow with the request.
		if c := b.ctl[from]; c != nil && (len(c.Prune) >= r.cfg.MaxPeerTopics ||
			slices.ContainsFunc(c.Prune, func(pr Prune) bool { return pr.Topic == name && !pr.Lazy })) {
			return
		}
		r.prune(b, name, from, now)
		return
	}
	t.mesh = append(t.mesh, link{id: from, eager: true})
}

// HandlePrune takes a peer's prune: a lazy prune turns its mesh link lazy; a full prune removes it from the mesh
// and, on a joined topic, starts a PruneBackoff during which it is not grafted.
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
	if t.joined { // a backoff gates grafts, which only joined topics make: one of another topic would be state the
		// peer could pile up without bound, a topic at a time
		r.setBackoff(p, pr.Topic, now)
	}
}
