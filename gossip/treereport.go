package gossip

import (
	"maps"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// A peer's tree reports: how a report is taken into the topic's tree state (HandleTree), what one peer's reports
// may make the node do, and the roots they name.

// HandleTree takes a peer's tree report for a topic.
func (r *Router) HandleTree(now time.Time, from session.NodeID, info TreeInfo) Output {
	r.clock(now)
	var b builder
	r.handleTree(&b, from, info)
	return b.result()
}

func (r *Router) handleTree(b *builder, from session.NodeID, info TreeInfo) {
	t := r.topics[info.Topic]
	p := r.peers[from]
	if t == nil || t.tree == nil || p == nil || info.Dist < 0 || info.Dist >= maxTreeDist || info.RootRank < 0 ||
		info.RootRank > maxTreeRank {
		return
	}
	if _, ok := p.topics[info.Topic]; !ok || len(info.Cuts) > maxTreeCuts {
		return
	}
	ts := t.tree
	// A beacon from the future is one no root has sent yet (beacons count quarters of a heartbeat of the root's
	// clock): taken as it is, a made-up one (MaxUint64) stopped the root's real beacons from advancing for this
	// node, which then gave a live root up within TreeStaleBeats and passed the made-up beacon on, so that the whole
	// tree moved. Cut to beaconLead heartbeats ahead of this node's clock, it holds the real ones back that long
	// at most, less than TreeStaleBeats; a root whose clock runs ahead further still looks alive, its beacons
	// advancing with this node's clock. The report keeps the beacon as signed, to check and relay.
	seq := min(info.Seq, r.beaconAt(r.now)+beaconLead*4)
	h, known := ts.heard[info.Root]
	newer := info.Root != r.cfg.Self && (!known || seq > h.seq)
	prev, had := ts.views[from]
	checks := 0 // the peer's reports on the topic checked this heartbeat
	if had && prev.beat == r.beats {
		checks = prev.checks
	}
	if newer && r.cfg.TreeVerify {
		// Checked before anything of the report is taken.
		var refused bool
		if newer, refused = r.verifyBeacon(b, from, &info, h, known, seq, &checks); refused {
			return
		}
	}
	r.takeReport(b, from, &info, t, reportState{seq: seq, h: h, known: known, newer: newer, had: had, checks: checks}, &prev)
}

// reportState is what handleTree found of a report before takeReport takes it: its beacon cut to seq, the root's
// beacon held (h, if known), whether the report's is newer, the peer's view before it (had) and its beacon checks
// this heartbeat.
type reportState struct {
	seq               uint64
	h                 beaconHeard
	known, newer, had bool
	checks            int
}

// takeReport takes a tree report that handleTree checked (st, prev the peer's view before it). It is apart from
// handleTree, and not inlined, so that its temporaries stay off the stack under the beacon's signature check: the
// relay goroutine's deepest path, which sits near 16 KiB (past it, Go keeps 32 KiB for each relay). Together, the
// two had a 1.8 KiB frame.
//
//go:noinline
func (r *Router) takeReport(b *builder, from session.NodeID, infop *TreeInfo, t *topic, st reportState, prevp *treeView) {
	info, prev, ts, seq, h, known, newer, had, checks := *infop, *prevp, t.tree, st.seq, st.h, st.known, st.newer, st.had, st.checks
	learned := false
	for _, c := range info.Cuts {
		if c.TTL >= 1 && r.addCut(ts, c.Parent, c.Child, r.beats+uint64(min(c.TTL, r.cutBeats()))) {
			learned = true
		}
	}
	info.Cuts = nil // taken: a view keeps none
	// A report that only advances the beacon of a root this node already takes as alive, at the same rank, changes
	// nothing updateTree decides: most reports of a settled tree are such, and the next heartbeat runs updateTree
	// anyway.
	same := !learned && had && r.fresh(prev) && samePlace(prev.info, info) && (info.Root == r.cfg.Self || r.alive(ts, info.Root))
	if info.Root != r.cfg.Self {
		if !known && len(ts.heard) >= maxHeardRoots {
			r.forgetUnnamedRoots(ts, from)
		}
		switch {
		case !known && len(ts.heard) >= maxHeardRoots:
			// The root cannot be recorded (every one kept is named by a peer's report): the view is stored, and
			// its root is not taken until it can be.
			same = false
		case newer:
			taken := h.taken
			h = r.heardBeacon(h, known, seq, &info)
			same = same && known && h.taken == taken
			ts.heard[info.Root] = h
		}
	}
	// The view keeps a path of its own: the decoder puts every path of an RPC in one array, which a view of a
	// few entries would otherwise keep whole (up to ~1 MiB).
	if had && slices.Equal(prev.info.Path, info.Path) {
		info.Path = prev.info.Path
	} else {
		info.Path = slices.Clone(info.Path)
	}
	// A view keeps no signature (heard keeps the one relayed): the decoder puts every bytes field of an RPC's
	// control in one array, which the view would otherwise keep whole.
	info.Sig = nil
	v := treeView{info: info, beat: r.beats, checks: checks}
	if had && prev.beat == r.beats {
		v.moves = prev.moves
	}
	// A report past the peer's allowance waits for the heartbeat's updateTree: a peer that changes its place on
	// and on (a hostile one: an honest peer reports at most maxPromptReports changes a heartbeat, then one on
	// the heartbeat) cannot make the node choose its own place at the rate its RPCs come.
	move := !same && v.moves < maxTreeMovesPerBeat
	if move {
		v.moves++
	}
	ts.views[from] = v
	switch {
	case move: // updateTree also drops the cached links: the peer may have become a child or stopped being one
		r.updateTree(b, info.Topic, t)
	case !same:
		ts.linksOK = false
	}
}

// verifyBeacon decides, with Config.TreeVerify, whether a report's beacon, newer than the one held (h, if known) by
// its cut seq (see handleTree), is taken (take): only once the root's signature of it holds, checked at most
// maxBeaconChecksPerBeat times a heartbeat per peer and topic (checks counts them) and as far as the sender's funds
// pay for them (HandleControlPaid). refused: the report is refused
// whole, for a missing signature or for one that does not hold, whose sender is penalised, since an honest node
// relays only beacons it checked.
func (r *Router) verifyBeacon(b *builder, from session.NodeID, info *TreeInfo, h beaconHeard, known bool, seq uint64,
	checks *int) (take, refused bool) {
	now := r.beaconAt(r.now)
	switch {
	case known && info.Seq <= h.signed:
		// Newer by the cut only: the root's clock runs ahead of this node's by more than beaconLead. Only the root
		// signs its beacons, so a real newer one is newer as signed; without this, an old one replayed, with the
		// rank the root announced then, was taken each time this node's clock passed a quarter. (A root whose clock
		// jumped ahead and back thus looks dead to the nodes holding its far beacon until they forget it: its own
		// doing.)
		return false, false
	case known && seq < h.seq+beaconCheckGap && info.RootRank == h.rank:
		return false, false // not worth a check: a newer beacon comes within the heartbeat
	case now > r.beaconAge() && info.Seq < now-r.beaconAge():
		return false, false // an old beacon replayed: it tells nothing of the root now
	case len(info.Sig) == 0:
		// Not penalised: it cost no check, and its sender may be a node that does not sign (an older version, or
		// TreeSign off), which then only cannot be anyone's parent.
		r.stats.TreeBadBeacons++
		return false, true
	case *checks >= maxBeaconChecksPerBeat:
		// Beacons of roots a peer made up, signed once and replayed, each cost a check and no penalty: past the
		// allowance, a newer beacon waits for a later report.
		return false, false
	case r.checkFunds < beaconCheckCost:
		// The sender's control budget cannot pay for the check (HandleControlPaid): the beacon waits too.
		r.stats.TreeBeaconsUnpaid++
		if p := r.peers[from]; p != nil {
			p.beaconsUnpaid++
		}
		return false, false
	}
	*checks++
	r.checkFunds -= beaconCheckCost
	if !r.beaconSigned(info) {
		r.stats.TreeBadBeacons++
		b.out.Penalize = append(b.out.Penalize, r.penalty(from, "tree report with a signature its root did not make"))
		return false, true
	}
	return true, false
}

// maxBeaconChecksPerBeat bounds the signatures of one peer's reports on one topic checked per heartbeat
// (Config.TreeVerify): as many as the reports that may make the node choose its place at once.
const maxBeaconChecksPerBeat = maxTreeMovesPerBeat

// beaconAge is, in quarters of a heartbeat, how old a signed beacon may be by this node's clock and still be news
// of its root (Config.TreeVerify): the clock skew allowed (Config.MaxClockSkew) and TreeStaleBeats. An older one,
// replayed to a node that forgot its root, would keep a dead root looking alive.
func (r *Router) beaconAge() uint64 {
	return uint64(r.cfg.MaxClockSkew/max(r.cfg.HeartbeatInterval/4, 1)) + uint64(4*r.cfg.TreeStaleBeats)
}

// maxTreeMovesPerBeat bounds the reports of one peer on one topic per heartbeat that make the node choose its place
// at once (updateTree); the others wait for the heartbeat, which chooses it anyway.
const maxTreeMovesPerBeat = 2 * maxPromptReports

// forgetUnnamedRoots makes room in a full ts.heard: it forgets the roots that no peer's report names, but this
// node's root, the report of peer from (about to be replaced) not counting. Roots made up by a peer, one report
// each, would otherwise fill it for good (their beacons renewed) and lock out every root heard of later, a real
// one included. A root forgotten this way and reported again is taken as newly heard of.
func (r *Router) forgetUnnamedRoots(ts *treeState, from session.NodeID) {
	named := make(map[session.NodeID]struct{}, len(ts.views))
	for id, v := range ts.views {
		if id != from {
			named[v.info.Root] = struct{}{}
		}
	}
	maps.DeleteFunc(ts.heard, func(root session.NodeID, _ beaconHeard) bool {
		_, ok := named[root]
		return !ok && root != ts.root
	})
}

// samePlace tells whether two reports of a peer give it the same place in the tree: root, root's rank, distance,
// parent and route.
func samePlace(a, b TreeInfo) bool {
	return a.Root == b.Root && a.RootRank == b.RootRank && a.Dist == b.Dist && a.Parent == b.Parent &&
		slices.Equal(a.Path, b.Path)
}
