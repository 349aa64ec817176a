package gossip

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// maxTreeDist bounds the distance a tree report may claim; longer ones are ignored, which ends any count to
// infinity after a loss of the root.
const maxTreeDist = 64

// rankStep is the number of topic peers per rank step (see treeRank); maxTreeRank bounds the rank a report may
// claim.
const (
	rankStep    = 4
	maxTreeRank = 1 << 16
)

// rankDropBeats is how many heartbeats a node's topic peers must stay too few for its rank before it announces a
// lower one (a higher one it announces at once). After a failure, a node's peers reconnect within seconds (redials
// with backoff, the bootstrapper's dials): a root whose rank dropped and rose again moved every node of its tree
// twice, or handed the root to a node of a rank between and took it back (node sim --kill 0.2: 160 moves per
// change, several changes per kill).
const rankDropBeats = 5

// rootIncumbency is how many rank steps a node of a root's tree may exceed the root's announced rank by and still
// stay in its tree: it takes the root over only once its rank is higher still. A root compared with another root
// (two trees meeting, or a node that roots its own tree after its root was lost) has no such edge: the higher
// rank, then the smallest id. Ranks rise at once, and after a failure the peers of some nodes grow back beyond
// their count before (the orphans redial): without this edge, such a node took the root over a second or two
// after the failure and every node of the tree moved again (node sim --kill 0.2: one run in ten or so).
const rootIncumbency = 1

// maxHeardRoots bounds the roots a node keeps the beacon of (see treeState.heard). When it is full, the roots no
// peer's report names are forgotten to make room (forgetUnnamedRoots); a report of a root that still finds no room
// is stored, but its root is not taken until it can be recorded.
const maxHeardRoots = 1024

// treeRank is the rank a node with peers topic peers announces, given the one it announced so far: one step per
// rankStep peers, moved only once the count leaves the current step by more than one peer, so that a peer coming
// and going at a step's edge does not move the root.
func treeRank(prev, peers int) int {
	if r := peers / rankStep; r != prev && (peers > (prev+1)*rankStep || peers < prev*rankStep-1) {
		return min(r, maxTreeRank)
	}
	return prev
}

// outranks tells whether a root of rank ra and id a is preferred to one of rank rb and id b: the higher rank, then
// the smaller id.
func outranks(ra int, a session.NodeID, rb int, b session.NodeID) bool {
	return ra > rb || ra == rb && bytes.Compare(a[:], b[:]) < 0
}

// TreeInfo is a node's place in the broadcast tree of a topic, as it reports it to its topic peers (Config.Tree).
type TreeInfo struct {
	Topic string
	// Root is the node the tree is rooted at, RootRank the rank the root announced (its topic peers, see
	// Config.Tree), Seq the latest beacon of the root the reporter heard of.
	Root     session.NodeID
	RootRank int
	Seq      uint64
	// Dist is the reporter's distance to the root in hops. Parent is its next hop there when that is the receiver
	// of the report, zero otherwise (and at the root): a report only needs to tell its receiver whether it is the
	// reporter's parent.
	Dist   int
	Parent session.NodeID
	// Path lists the nodes of the reporter's route to the root (see pathID), from the root's side to the
	// reporter, at most maxTreePath of them, the nearest: a node never takes as parent a peer whose route runs
	// through itself. It must not be modified.
	Path []uint32
	// Upstream is the reporter's parent, told to a child whose route is at least Config.TreeShortcutDist long so
	// that it can connect to it; zero otherwise.
	Upstream session.NodeID
	// Size and Deep count the nodes of the tree below the reporter, itself included, and those of them at least
	// Config.TreeShortcutDist from the root, in reports to its parent; in reports to its children, those of the
	// whole tree as the reporter knows them (Config.TreeShortcutShare). Zero without shortcuts.
	Size, Deep int
	// Cuts lists the links of the tree the reporter knows broken lately (see TreeCut), at most maxTreeCuts. It
	// must not be modified.
	Cuts []TreeCut
	// Sig is the root's signature of Topic, Root, RootRank and Seq (AppendBeaconSignedBytes, Config.TreeSign),
	// empty if the root signed none. It must not be modified.
	Sig []byte
}

// maxTreeSize bounds the node counts a report may claim (TreeInfo.Size, Deep).
const maxTreeSize = 1 << 24

// maxPromptReports bounds the changes of place a node reports at once between two heartbeats, per topic; later
// ones wait for the next heartbeat (treeState.deferred). A tree settles with one to three changes per node.
const maxPromptReports = 4

// maxTreePath is the number of nodes a route's path keeps (TreeInfo.Path): longer routes keep their nearest
// nodes.
const maxTreePath = 16

// pathID is how a route's path names a node: the first 4 bytes of its id. Two of 1000 nodes share one with a
// probability of about 10^-4, which would only keep a route from being taken.
func pathID(id session.NodeID) uint32 {
	return uint32(id[0])<<24 | uint32(id[1])<<16 | uint32(id[2])<<8 | uint32(id[3])
}

// extendPath returns the path of a route through a parent whose path is via: via's nearest maxTreePath-1 nodes
// and this node. It returns cur, the path reported so far, when that is the same.
func extendPath(cur, via []uint32, self uint32) []uint32 {
	via = via[max(0, len(via)-(maxTreePath-1)):]
	if len(cur) == len(via)+1 && cur[len(via)] == self && slices.Equal(cur[:len(via)], via) {
		return cur
	}
	return append(append(make([]uint32, 0, len(via)+1), via...), self)
}

type treeView struct {
	info  TreeInfo
	beat  uint64 // the heartbeat count when it was received
	moves int    // the peer's reports on the topic that heartbeat count that made the node choose its place
	// checks counts the peer's reports on the topic that heartbeat count whose signature was checked
	// (maxBeaconChecksPerBeat).
	checks int
}

// treeState is a joined topic's spanning-tree state.
type treeState struct {
	root     session.NodeID
	rootRank int // the rank the root announced
	rank     int // this node's own rank, announced while it is the root
	seq      uint64
	dist     int
	parent   session.NodeID
	path     []uint32 // the route's path this node reports (TreeInfo.Path)
	beacon   uint64   // this node's own beacon counter, advanced each heartbeat
	// sig is this node's signature of its beacon sigSeq at rank sigRank (Config.TreeSign), made when a report of
	// its own tree first needs it: a root signs once a heartbeat.
	sig     []byte
	sigSeq  uint64
	sigRank int
	views   map[session.NodeID]treeView
	// reported holds, per topic peer, the heartbeat count when this node last reported to it (reportTree): the
	// periodic reports are due by it, so that a report that rode on a message resets the peer's period.
	reported map[session.NodeID]uint64
	deferred bool // a change of place not reported to every topic peer yet
	// prompt counts the changes of place reported at once since the last heartbeat (see maxPromptReports).
	prompt int
	// heard holds, per root other than this node, its newest beacon heard of in any report and when it was
	// heard first. A root whose beacon did not advance for TreeStaleBeats is not taken, whichever root this node
	// chose meanwhile: a dead root is thus given up within TreeStaleBeats of its last beacon, even while reports
	// of it keep coming from peers that have not given it up yet.
	heard map[session.NodeID]beaconHeard
	cands []session.NodeID // scratch space of updateTree: the roots of fresh reports
	// links caches treeLinks while linksOK: every message forwarded reads them, and they change only with a
	// report that moves a peer, a heartbeat (reports go stale), a change of place or of the topic's peers.
	links   []session.NodeID
	linksOK bool
	// cross caches crossLinks along with links.
	cross []session.NodeID
	// lowSince is the heartbeat count since which the node's topic peers are too few for its rank (see
	// rankDropBeats), 0 while they are not.
	lowSince uint64
	// shortcut is the peer of the last shortcut request (Config.TreeShortcutDist) and shortcutBeat its heartbeat
	// count, 0 for none; movedBeat is the heartbeat count of the last change of root, parent or distance, and
	// parentBeat of root or parent only (fromParent counts from then).
	shortcut     session.NodeID
	shortcutBeat uint64
	movedBeat    uint64
	parentBeat   uint64
	// cuts holds the broken links this node knows of, oldest first, until their heartbeat count of expiry; cutSeq
	// numbers them as they come, and cutSent holds, per topic peer, the last one reported to it: each cut goes to
	// each peer once. lost holds the topic peers this node lost lately (a route through one of them is as stale),
	// and orphaned tells updateTree that the parent was lost: the new place goes to every topic peer at once, with
	// the cut.
	cuts     []treeCut
	cutSeq   uint64
	cutSent  map[session.NodeID]uint64
	lost     []treeCut // child: the lost peer's pathID
	orphaned bool
	// recent holds the last messages accepted (treedistrust.go): whether each came repaired, and from which peer;
	// distrusted the roots given up for withholding messages; shunned the parents left for it, until their
	// heartbeat count, and shunBeat the heartbeat count of the last (0: none). fromParent is recent for the
	// messages pulled since the node took its parent (parentBeat), which a change of distance does not clear: a
	// parent that withheld messages and made its children's distance change every heartbeat was never judged.
	recent     repairWindow
	fromParent repairWindow
	distrusted map[session.NodeID]distrust
	shunned    map[session.NodeID]uint64
	shunBeat   uint64
}

type beaconHeard struct {
	seq  uint64 // the newest beacon heard of, cut to beaconLead heartbeats ahead of this node's clock
	rank int    // the rank announced with it
	beat uint64 // the heartbeat count when it was first heard of
	// signed is that beacon as its root sent it (before the cut), sig the root's signature of it and rank (empty
	// if the root signed none): the node's reports of the root relay them.
	signed uint64
	sig    []byte
	// taken is the rank the node takes the root by: a received rank damped as a node damps its own
	// (rankDropBeats). A higher rank is taken at once, a lower one once the root announced lower ranks for
	// rankDropBeats heartbeats of its beacons, counted from lowFrom while lowering.
	taken    int
	lowFrom  uint64
	lowering bool
}

// beaconCheckGap is, in quarters of a heartbeat, how much newer than the one held a beacon at the same rank must
// be for its signature to be checked (Config.TreeVerify); one less new is not taken. A node hears its root's
// beacon from several peers, not all as new: this keeps it to about a check per root a heartbeat, less than a
// root's beacons advance by.
const beaconCheckGap = 2

// heardBeacon returns h (known: heard of before) after a newer beacon of its root, at seq after the cut (see
// handleTree), with the report's rank and signature.
func (r *Router) heardBeacon(h beaconHeard, known bool, seq uint64, info *TreeInfo) beaconHeard {
	// A root not alive until this beacon has no rank to damp: the one it had when it stopped, kept with its
	// beacon for up to 16 x TreeStaleBeats heartbeats, pulled nodes away from a sound root when it came back lower.
	stale := known && r.beats-h.beat > uint64(r.cfg.TreeStaleBeats)
	// The signature is cloned: the decoder puts every bytes field of an RPC's control in one array, which it would
	// keep whole.
	h.seq, h.beat, h.rank, h.signed, h.sig = seq, r.beats, info.RootRank, info.Seq, slices.Clone(info.Sig)
	switch {
	case !known || stale || h.rank >= h.taken:
		h.taken, h.lowering = h.rank, false
	case !h.lowering:
		h.lowFrom, h.lowering = seq, true
	case seq-h.lowFrom >= rankDropBeats*4:
		h.taken, h.lowering = h.rank, false
	}
	return h
}

// beaconSigned tells whether a report's beacon and rank carry its root's signature.
func (r *Router) beaconSigned(info *TreeInfo) bool {
	r.stats.TreeBeaconsChecked++
	r.signed = AppendBeaconSignedBytes(r.signed[:0], info.Topic, info.Root, info.RootRank, info.Seq)
	return len(info.Sig) == ed25519.SignatureSize && info.Root.Verify(r.signed, info.Sig)
}

// reportedBeacon returns the root's rank and beacon that a report of this node's place carries, and the root's
// signature of them: at the root its own, signed when first needed (Config.TreeSign); otherwise the newest heard
// of, as the root sent them.
func (r *Router) reportedBeacon(name string, ts *treeState) (rank int, seq uint64, sig []byte) {
	if ts.root != r.cfg.Self {
		h := ts.heard[ts.root]
		return h.rank, h.signed, h.sig
	}
	if r.cfg.TreeSign != nil && (ts.sig == nil || ts.sigSeq != ts.seq || ts.sigRank != ts.rootRank) {
		r.signed = AppendBeaconSignedBytes(r.signed[:0], name, r.cfg.Self, ts.rootRank, ts.seq)
		ts.sig, ts.sigSeq, ts.sigRank = r.cfg.TreeSign(r.signed), ts.seq, ts.rootRank
	}
	return ts.rootRank, ts.seq, ts.sig
}

func (r *Router) newTree(now time.Time) *treeState {
	return &treeState{root: r.cfg.Self, beacon: r.beaconAt(now), views: make(map[session.NodeID]treeView),
		heard: make(map[session.NodeID]beaconHeard), reported: make(map[session.NodeID]uint64)}
}

// beaconLead is how many heartbeats ahead of a node's clock a beacon it takes may be (see handleTree): clock skew
// between honest nodes, and an attacker's hold on a root's beacons.
const beaconLead = 2

// beaconAt is the beacon a root sends at time now, at least: the time in quarters of a heartbeat, so that a root
// that restarts goes on with newer beacons than it sent before, which its peers still remember.
func (r *Router) beaconAt(now time.Time) uint64 {
	return uint64(now.UnixNano() / max(int64(r.cfg.HeartbeatInterval/4), 1))
}

// treeLinks returns the tree links of a joined topic: the parent and the peers that report this node as their
// parent. Nil without Config.Tree. The slice is the tree's cache: callers must not change it or keep it past a
// change of the tree.
func (r *Router) treeLinks(t *topic) []session.NodeID {
	ts := t.tree
	if ts == nil {
		return nil
	}
	if ts.linksOK {
		return ts.links
	}
	out, cross := ts.links[:0], ts.cross[:0]
	if !ts.parent.IsZero() {
		out = append(out, ts.parent)
	}
	for _, id := range t.peers {
		if r.isChild(ts, id) && id != ts.parent {
			out = append(out, id)
		} else if v, ok := ts.views[id]; ok && v.info.Root != ts.root && r.fresh(v) {
			cross = append(cross, id)
		}
	}
	ts.links, ts.cross, ts.linksOK = out, cross, true
	return out
}

// crossLinks returns the topic peers whose fresh report names another root than this node's, cached with
// treeLinks. A message goes over them too: while the tree changes root (after the root's death, or when two trees
// meet), the nodes that took the new root and those still on the old one form separate trees, and a message
// published in one would reach the other only by IHAVE/IWANT, 0.6-1.3 s later. Over the links between the two, it
// crosses at once; in a settled tree there are none. In the 200-node simulation with 20% killed, the root among
// them, the messages slower than 200 ms fell from 203 in 20 seeds to 18.
func (r *Router) crossLinks(t *topic) []session.NodeID {
	r.treeLinks(t)
	return t.tree.cross
}

// isChild tells whether peer id's fresh report names this node as its parent on this node's root.
func (r *Router) isChild(ts *treeState, id session.NodeID) bool {
	v, ok := ts.views[id]
	return ok && v.info.Parent == r.cfg.Self && v.info.Root == ts.root && r.fresh(v)
}

// TreeLinks returns the tree links of a topic (Config.Tree): its parent, zero at the root, and its children.
func (r *Router) TreeLinks(name string) (root, parent session.NodeID, dist int, links []session.NodeID) {
	t := r.topics[name]
	if t == nil || t.tree == nil {
		return root, parent, 0, nil
	}
	return t.tree.root, t.tree.parent, t.tree.dist, slices.Clone(r.treeLinks(t))
}

// TreeRank returns the rank this node announces on a topic (Config.Tree): one step per four topic peers.
func (r *Router) TreeRank(name string) int {
	if t := r.topics[name]; t != nil && t.tree != nil {
		return t.tree.rank
	}
	return 0
}

// fresh tells whether a peer's tree report is recent enough to be used: taken within viewBeats heartbeats.
func (r *Router) fresh(v treeView) bool { return r.beats-v.beat <= r.viewBeats() }

// viewBeats is how many heartbeats a peer's tree report stays fresh: 2 x TreeStaleBeats - 1 (9 by default). A
// report only needs renewing for what it cannot tell by itself: a change of place is reported at once (or on the
// next heartbeat, when damped), a lost peer's connection closes, and a dead root's beacon stops (TreeStaleBeats,
// which the heard beacons judge, not the views). So the reports to the peers that are not tree links, most of an
// idle network's messages, come every lazyReportBeats (8) heartbeats. Views fresh for TreeStaleBeats, with those
// reports every 4, cost an idle network three times the messages (docs/MEASUREMENTS.md, stops 36-37).
func (r *Router) viewBeats() uint64 { return uint64(2*r.cfg.TreeStaleBeats - 1) }

// alive tells whether a root other than this node sent a beacon this node heard of first within the last
// TreeStaleBeats heartbeats.
func (r *Router) alive(ts *treeState, root session.NodeID) bool {
	h, ok := ts.heard[root]
	return ok && r.beats-h.beat <= uint64(r.cfg.TreeStaleBeats)
}

// updateTree chooses the root, the parent and the distance. The root is the best usable candidate among this node
// and the roots of the peers' fresh reports: the highest rank (as announced with the candidate's latest beacon),
// then the smallest id, so that the tree hangs from a well-connected node and is shallow. The parent is the peer
// nearest that root (the current parent on a tie). A change of place is reported at once to the topic's peers, so
// that the tree settles within round trips rather than heartbeats, except a longer route (see below). It tells
// whether it reported to every topic peer.
func (r *Router) updateTree(b *builder, name string, t *topic) (reportedAll bool) {
	ts := t.tree
	self := r.cfg.Self
	cands := ts.cands[:0]
	for _, v := range ts.views {
		if !r.fresh(v) || v.info.Root == self || !r.alive(ts, v.info.Root) || r.distrusted(ts, v.info.Root) {
			continue
		}
		if !slices.Contains(cands, v.info.Root) {
			cands = append(cands, v.info.Root)
		}
	}
	ts.cands = cands
	mine := pathID(self)
	var root session.NodeID
	var rank, dist int
	var seq uint64
	var parent session.NodeID
	var via []uint32
	incumbent := ts.root == self
	for {
		root, rank, seq, dist = self, ts.rank, ts.beacon, 0
		for _, c := range cands {
			// The rank is the one announced with the newest beacon heard of (damped, see beaconHeard.taken), not
			// with a report's: a report may carry an old beacon, and with it a rank the root no longer announces.
			h := ts.heard[c]
			if root == self && !incumbent {
				// This node is in another root's tree: it takes the root over only past rootIncumbency steps.
				if h.taken+rootIncumbency >= rank {
					root, rank, seq = c, h.taken, h.seq
				}
			} else if outranks(h.taken, c, rank, root) {
				root, rank, seq = c, h.taken, h.seq
			}
		}
		if root == self {
			break
		}
		if parent, dist, via = r.nearestPeer(ts, root, mine); !parent.IsZero() {
			break
		}
		// Every route to that root heard of runs through this node or a cut (a lost root's children report
		// theirs, so a dead root is given up within round trips): the next best root, or this node until a
		// better one comes.
		cands = slices.DeleteFunc(cands, func(c session.NodeID) bool { return c == root })
	}
	if root == self {
		via = nil
	}
	old := *ts
	ts.root, ts.rootRank, ts.parent, ts.dist, ts.seq = root, rank, parent, dist, seq
	ts.linksOK = false
	if root != old.root || parent != old.parent || dist != old.dist {
		ts.movedBeat, ts.recent = r.beats, repairWindow{}
	}
	if root != old.root || parent != old.parent {
		ts.parentBeat, ts.fromParent = r.beats, repairWindow{}
	}
	ts.path = extendPath(ts.path, via, mine)
	orphaned := ts.orphaned
	ts.orphaned = false
	if root == old.root && rank == old.rootRank && dist == old.dist && parent == old.parent {
		return false // the same place: nothing to report
	}
	r.stats.TreeMoves++
	if ts.prompt >= maxPromptReports {
		r.stats.TreeDamped++
		// Damping, as BGP's minimum route advertisement interval: a node whose place keeps changing within a
		// heartbeat tells its peers the latest on the next one. Whatever makes routes flap (a lost root, ranks
		// moving while many nodes reconnect), reports then cannot multiply at the speed of round trips.
		ts.deferred = true
		return false
	}
	ts.prompt++
	if root == old.root && rank == old.rootRank && dist > old.dist && !orphaned {
		// A longer route to the same root (the parent not lost: that goes to every peer, with its cut): the new
		// and the old parent hear of it now, as the links messages take depend on it, the others on the next
		// heartbeat. Were they all told at once, a lost route would count to infinity at the speed of round trips,
		// in a storm of reports; this way it counts a step per heartbeat until the root's beacon is found stopped
		// (TreeStaleBeats), its routes cut, or a shorter route comes.
		var to []session.NodeID
		for _, id := range []session.NodeID{parent, old.parent} {
			if !id.IsZero() && !slices.Contains(to, id) && slices.Contains(t.peers, id) {
				to = append(to, id)
			}
		}
		r.reportTree(b, name, t, to)
		ts.deferred = true
		return false
	}
	r.reportTree(b, name, t, t.peers)
	ts.deferred = false
	return true
}

// nearestPeer returns the peer nearest root by its fresh report, the current parent on a tie, the distance
// through it and its route's path. It skips the peers whose route runs through this node (mine) or is known broken
// (brokenRoute; for the current parent, since parentGraceBeats), and the parents shunned for withholding messages
// unless no other peer has a route (treedistrust.go). Zero if none.
func (r *Router) nearestPeer(ts *treeState, root session.NodeID, mine uint32) (parent session.NodeID, dist int, via []uint32) {
	if parent, dist, via = r.nearestPeerShunning(ts, root, mine, true); parent.IsZero() && len(ts.shunned) > 0 {
		parent, dist, via = r.nearestPeerShunning(ts, root, mine, false) // a shunned parent rather than none
	}
	return parent, dist, via
}

// nearestPeerShunning is nearestPeer, skipping the parents shunned for withholding messages if shun is set.
func (r *Router) nearestPeerShunning(ts *treeState, root session.NodeID, mine uint32, shun bool) (parent session.NodeID, dist int, via []uint32) {
	dist = maxTreeDist
	for id, v := range ts.views {
		if !r.fresh(v) || v.info.Root != root || v.info.Parent == r.cfg.Self || slices.Contains(v.info.Path, mine) ||
			shun && r.shunned(ts, id) {
			continue
		}
		before := uint64(math.MaxUint64)
		if id == ts.parent {
			before = r.beats + 1 - min(r.beats+1, parentGraceBeats)
		}
		if ts.brokenRoute(v.info.Path, before) {
			continue
		}
		d := v.info.Dist + 1
		if d < dist || d == dist && (id == ts.parent || parent != ts.parent && bytes.Compare(id[:], parent[:]) < 0) {
			dist, parent, via = d, id, v.info.Path
		}
	}
	return parent, dist, via
}

// reportTree sends the node's tree report to the given peers.
func (r *Router) reportTree(b *builder, name string, t *topic, to []session.NodeID) {
	ts := t.tree
	for _, id := range to {
		info := TreeInfo{Topic: name, Root: ts.root, Dist: ts.dist, Path: ts.path, Cuts: r.cutsFor(ts, id)}
		info.RootRank, info.Seq, info.Sig = r.reportedBeacon(name, ts)
		if r.cfg.TreeShortcutDist > 0 {
			r.shortcutInfo(&info, t, id)
		}
		if id == ts.parent {
			info.Parent = ts.parent
		}
		c := b.control(id)
		c.Tree = append(c.Tree, info)
		ts.reported[id] = r.beats
	}
	r.stats.TreeReports += uint64(len(to))
}

// reportPeriod is the period, in heartbeats, of the node's reports to a topic peer whose place did not change: 2
// for its tree links, lazyReportBeats for the others.
func (r *Router) reportPeriod(t *topic, id session.NodeID) uint64 {
	if slices.Contains(r.treeLinks(t), id) {
		return 2
	}
	return r.lazyReportBeats()
}

// rideReport adds the node's tree report to the RPC that carries a message to tree link id when the periodic report
// to id falls due at the next heartbeat: it stands for that report, which then costs no message of its own. Every
// publication crosses each tree link once, so while messages flow most links' reports ride. Only tree links take
// reports this way: a report a heartbeat early leaves their period of 2 well within TreeStaleBeats, not the other
// peers' longer one.
func (r *Router) rideReport(b *builder, name string, t *topic, id session.NodeID) {
	ts := t.tree
	if ts == nil || !slices.Contains(r.treeLinks(t), id) || r.beats+1-ts.reported[id] < 2 {
		return
	}
	if c := b.ctl[id]; c != nil && slices.ContainsFunc(c.Tree, func(i TreeInfo) bool { return i.Topic == name }) {
		return
	}
	r.reportTree(b, name, t, []session.NodeID{id})
	ts.reported[id] = r.beats + 1
}

// treeHeartbeat advances the node's beacon, gives up a root whose beacon stopped, forgets stale reports and
// beacons and sends the node's report: to every topic peer if its place changed; otherwise to its tree links
// (parent and children) every other heartbeat and to the other topic peers every lazyReportBeats, counted from the
// last report to each (one that rode on a message included, see rideReport), and on any heartbeat to the peers
// that control goes to anyway (it then costs no message of its own) and to those owed a cut (owesCuts: a cut must
// not wait for the lazy period, its news is the repair). The tree links carry
// the root's beacon and the subtree counts, so they hear often; the other peers only need a fresh report for when
// they must choose a new parent, and they are most of a node's peers (14 of 16 at N = 200, degree 8): their
// reports were 3/4 of an idle network's messages.
func (r *Router) treeHeartbeat(b *builder, now time.Time, name string, t *topic) {
	ts := t.tree
	ts.prompt = 0
	ts.beacon = max(ts.beacon+1, r.beaconAt(now))
	if r.cfg.TreeRanked {
		switch next := treeRank(ts.rank, len(t.peers)); {
		case next >= ts.rank:
			ts.rank, ts.lowSince = next, 0
		case ts.lowSince == 0:
			ts.lowSince = r.beats
		case r.beats-ts.lowSince >= rankDropBeats:
			ts.rank, ts.lowSince = next, 0
		}
	}
	for id, v := range ts.views {
		if !r.fresh(v) {
			delete(ts.views, id)
		}
	}
	r.expireCuts(ts)
	for root, h := range ts.heard {
		if r.beats-h.beat > uint64(16*r.cfg.TreeStaleBeats) {
			delete(ts.heard, root) // by then no report of its old beacons is fresh any more
		}
	}
	if ts.root == r.cfg.Self {
		ts.seq = ts.beacon
	}
	r.treeShortcut(b, t)
	// The peers gone from the topic are forgotten first: the returns below would skip it at every heartbeat of a
	// node whose place keeps changing.
	gone := func(id session.NodeID, _ uint64) bool { return !slices.Contains(t.peers, id) }
	maps.DeleteFunc(ts.reported, gone)
	maps.DeleteFunc(ts.cutSent, gone)
	if r.updateTree(b, name, t) {
		return // reported already
	}
	if ts.deferred {
		ts.deferred = false
		r.reportTree(b, name, t, t.peers)
		return
	}
	for _, id := range t.peers {
		if b.ctl[id] != nil || r.beats-ts.reported[id] >= r.reportPeriod(t, id) || r.owesCuts(ts, id) {
			r.reportTree(b, name, t, []session.NodeID{id})
		}
	}
}

// lazyReportBeats is the period, in heartbeats, of the reports to topic peers that are not tree links: the
// longest that keeps them fresh (viewBeats) with a heartbeat to spare, at least 2.
func (r *Router) lazyReportBeats() uint64 { return max(2, r.viewBeats()-1) }

// shortcutSettleBeats is the number of heartbeats a node's place in the tree must stay the same before it asks for
// a shortcut: while the tree repairs (after its root or many nodes failed), routes change every heartbeat, and
// connections asked for then would only add to the churn.
const shortcutSettleBeats = 5

// treeShortcut asks for a connection to the parent's parent when the node's route to the root is at least
// Config.TreeShortcutDist long and the parent named it (TreeInfo.Upstream), its place has not changed for
// shortcutSettleBeats, it has not asked within TreeShortcutInterval, its last shortcut is no longer connected and
// the deep nodes are at most TreeShortcutShare of the tree: once connected, the node's route is a hop shorter
// through it.
func (r *Router) treeShortcut(b *builder, t *topic) {
	ts := t.tree
	if r.cfg.TreeShortcutDist == 0 || ts.dist < r.cfg.TreeShortcutDist || ts.parent.IsZero() ||
		r.beats-ts.movedBeat < shortcutSettleBeats {
		return
	}
	if ts.shortcutBeat != 0 && r.beats-ts.shortcutBeat < uint64(r.shortcutBeats()) {
		return
	}
	if !ts.shortcut.IsZero() && r.peers[ts.shortcut] != nil {
		return // one shortcut at a time: the last one is still connected
	}
	v, ok := ts.views[ts.parent]
	up := v.info.Upstream
	if !ok || !r.fresh(v) || v.info.Root != ts.root || up.IsZero() || up == r.cfg.Self || r.peers[up] != nil ||
		slices.Contains(b.out.Connect, up) {
		return
	}
	if size, deep := r.treeTotals(t); size == 0 || float64(deep) > r.cfg.TreeShortcutShare*float64(size) {
		return // not a thin last layer, or not known yet
	}
	ts.shortcut, ts.shortcutBeat = up, r.beats
	b.out.Connect = append(b.out.Connect, up)
	r.stats.TreeShortcuts++
}

// shortcutInfo fills in what a report to peer id tells about shortcuts: to the parent, the counts of the subtree; to
// a child, the counts of the whole tree and, if the child's route is long enough, this node's parent.
func (r *Router) shortcutInfo(info *TreeInfo, t *topic, id session.NodeID) {
	ts := t.tree
	if id == ts.parent {
		info.Size, info.Deep = r.subtreeCounts(t)
		return
	}
	if v, ok := ts.views[id]; !ok || v.info.Parent != r.cfg.Self || v.info.Root != ts.root {
		return
	}
	info.Size, info.Deep = r.treeTotals(t)
	if ts.dist+1 >= r.cfg.TreeShortcutDist && !ts.parent.IsZero() {
		info.Upstream = ts.parent
	}
}

// subtreeCounts counts the nodes of the tree below this node, itself included, and those of them at
// TreeShortcutDist or more, from its children's latest reports.
func (r *Router) subtreeCounts(t *topic) (size, deep int) {
	ts := t.tree
	size = 1
	if ts.dist >= r.cfg.TreeShortcutDist {
		deep = 1
	}
	for _, id := range t.peers {
		if r.isChild(ts, id) {
			v := ts.views[id]
			size += v.info.Size
			deep += v.info.Deep
		}
	}
	return min(size, maxTreeSize), min(deep, maxTreeSize)
}

// treeTotals returns the whole tree's counts as this node knows them: its own at the root, its parent's report
// otherwise (zero while unknown).
func (r *Router) treeTotals(t *topic) (size, deep int) {
	ts := t.tree
	if ts.root == r.cfg.Self {
		return r.subtreeCounts(t)
	}
	if v, ok := ts.views[ts.parent]; ok && v.info.Root == ts.root && r.fresh(v) {
		return v.info.Size, v.info.Deep
	}
	return 0, 0
}

// shortcutBeats is Config.TreeShortcutInterval in heartbeats, at least one.
func (r *Router) shortcutBeats() int {
	return max(1, int(r.cfg.TreeShortcutInterval/r.cfg.HeartbeatInterval))
}
