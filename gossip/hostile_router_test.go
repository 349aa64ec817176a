package gossip

// Tests of the Router under hostile input: made-up copies, roots and beacons, replays, long topics, reconnecting
// to shed penalties.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// TestRouterRefusesTopicsOverMaxTopicLength: a topic over MaxTopicLength is neither tracked for a peer, nor
// joined, nor published on, so no input from a peer naming one finds a topic or keeps its name.
func TestRouterRefusesTopicsOverMaxTopicLength(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self = true, nid(100)
	r := joined(t, cfg, 2)
	long := strings.Repeat("t", cfg.MaxTopicLength+1)
	if err := r.PeerSubscribed(nid(1), long); !errors.Is(err, ErrTopicTooLong) {
		t.Errorf("PeerSubscribed: %v, want ErrTopicTooLong", err)
	}
	r.Join(t0, long)
	if _, err := r.Publish(t0, &Message{Topic: long, Data: []byte("x")}); !errors.Is(err, ErrTopicTooLong) {
		t.Errorf("Publish: %v, want ErrTopicTooLong", err)
	}
	out := r.HandleControl(t0, nid(1), &Control{IHave: []IHave{{Topic: long, IDs: []MsgID{{1}}}}, Graft: []string{long},
		Prune: []Prune{{Topic: long}}, Tree: []TreeInfo{{Topic: long, Root: nid(3)}}})
	if _, st := r.HandleMessage(t0, nid(1), &Message{Topic: long, Data: []byte("x")}); st != Dropped || len(out.Send) != 0 {
		t.Errorf("inputs naming a long topic: message %v, sends %+v", st, out.Send)
	}
	if len(r.topics) != 1 {
		t.Errorf("%d topics known, want only %q", len(r.topics), topicA)
	}
	if err := r.PeerSubscribed(nid(1), long[1:]); err != nil {
		t.Errorf("a topic of MaxTopicLength: %v", err)
	}
}

// TestRejectedCopyDoesNotSuppressTheGenuineMessage: message ids hash topic and payload only, so a peer can sign
// someone else's payload as its own origin (a valid signature: it is its own key). Validation (which checks the
// origin, say) rejects that copy; its id is forgotten, and the genuine message, arriving next from an honest peer,
// is validated and delivered.
func TestRejectedCopyDoesNotSuppressTheGenuineMessage(t *testing.T) {
	for _, v := range []Verdict{Reject, Ignore} {
		r := joined(t, DefaultConfig(), 2)
		forged := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(1), Seq: 1, OriginTime: t0.UnixNano()} // signed by peer 1 itself
		out, st := receive(t, r, t0, nid(1), forged, v)
		if st != Pending || len(out.Penalize) != map[Verdict]int{Reject: 1}[v] {
			t.Fatalf("verdict %v on the forged copy: %v, penalties %v", v, st, out.Penalize)
		}
		genuine := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(9), Seq: 7, OriginTime: t0.UnixNano()} // the real publisher's
		out, st = receive(t, r, t0, nid(2), genuine, Accept)
		if len(out.Deliver) != 1 || out.Deliver[0].Origin != nid(9) {
			t.Fatalf("verdict %v on the forged copy: the genuine message from origin 9 is %v and not delivered", v, st)
		}
	}
}

// TestCopyDuringValidationIsFetchedAfterAReject: the genuine copy that comes while a forged one of the same id
// awaits its verdict is a duplicate; once the forged one is rejected, the node asks its sender for it (IWANT), and
// an announcement (IHAVE) of the id is taken up too.
func TestCopyDuringValidationIsFetchedAfterAReject(t *testing.T) {
	r := joined(t, DefaultConfig(), 3)
	forged := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(1), Seq: 1, OriginTime: t0.UnixNano()}
	if _, st := r.HandleMessage(t0, nid(1), forged); st != Pending {
		t.Fatalf("forged copy: %v", st)
	}
	genuine := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(9), Seq: 7, OriginTime: t0.UnixNano()}
	if _, st := r.HandleMessage(t0, nid(2), genuine); st != Duplicate {
		t.Fatalf("the copy that came during validation: %v, want duplicate", st)
	}
	if out := r.HandleIHave(t0, nid(3), IHave{Topic: topicA, IDs: []MsgID{forged.ID}}); len(out.Send) != 0 {
		t.Fatalf("an IHAVE of the id pending was taken up: %+v", out.Send)
	}
	out := r.Validated(t0, forged.ID, Reject)
	if c, _ := sendsTo(out, nid(2)); c == nil || !slices.Equal(c.IWant, []MsgID{forged.ID}) {
		t.Fatalf("after the reject, peer 2 (which sent a copy meanwhile) was not asked for it: %+v", out.Send)
	}
	again := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(9), Seq: 7, OriginTime: t0.UnixNano()}
	if out, _ := receive(t, r, t0, nid(2), again, Accept); len(out.Deliver) != 1 || out.Deliver[0].Origin != nid(9) {
		t.Fatal("the genuine message pulled after the reject was not delivered")
	}

	// Without a copy meanwhile, an announcement after the reject is asked for.
	r = joined(t, DefaultConfig(), 3)
	receive(t, r, t0, nid(1), forged, Reject)
	out = r.HandleIHave(t0, nid(3), IHave{Topic: topicA, IDs: []MsgID{forged.ID}})
	if c, _ := sendsTo(out, nid(3)); c == nil || !slices.Equal(c.IWant, []MsgID{forged.ID}) {
		t.Fatalf("an IHAVE after the reject was not asked for: %+v", out.Send)
	}
}

// TestAnnouncementDuringValidationIsAskedForAfterAReject: peers that only announced the id (IHAVE) while a forged
// copy awaited its verdict are asked for it once the copy is rejected or ignored, one after the other. A mesh link
// announces each id once, and the announcements were dropped: the forged copy kept the genuine message from a node
// that only heard of it (an audit's finding).
func TestAnnouncementDuringValidationIsAskedForAfterAReject(t *testing.T) {
	cfg := DefaultConfig()
	for _, v := range []Verdict{Reject, Ignore} {
		r := joined(t, cfg, 3) // peer 1 hostile; peers 2 and 3 announce the genuine message
		forged := &Message{Topic: topicA, Data: []byte("block 42"), Origin: nid(1), Seq: 1, OriginTime: t0.UnixNano()}
		if _, st := r.HandleMessage(t0, nid(1), forged); st != Pending {
			t.Fatalf("forged copy: %v", st)
		}
		for _, p := range []int{1, 2, 3} { // the forger's own announcement is no other source
			if out := r.HandleIHave(t0.Add(600*time.Millisecond), nid(p), IHave{Topic: topicA, IDs: []MsgID{forged.ID}}); len(out.Send) != 0 {
				t.Fatalf("an IHAVE of the id pending was asked for at once: %+v", out.Send)
			}
		}
		out := r.Validated(t0.Add(time.Second), forged.ID, v)
		if c, _ := sendsTo(out, nid(2)); c == nil || !slices.Equal(c.IWant, []MsgID{forged.ID}) {
			t.Fatalf("verdict %v: peer 2, which announced the id meanwhile, was not asked for it: %+v", v, out.Send)
		}
		// Peer 2 does not answer: its IWANT times out and peer 3 is asked; the forger is not.
		out = r.Heartbeat(t0.Add(time.Second + cfg.IWantTimeout))
		if c, _ := sendsTo(out, nid(3)); c == nil || !slices.Equal(c.IWant, []MsgID{forged.ID}) {
			t.Fatalf("verdict %v: peer 3 was not asked after peer 2 failed to answer: %+v", v, out.Send)
		}
		if c, _ := sendsTo(out, nid(1)); c != nil && slices.Contains(c.IWant, forged.ID) {
			t.Fatalf("verdict %v: the forger was asked for the id", v)
		}
	}
}

// TestLateVerdictDoesNotApplyToAnotherCopy: a verdict that comes after its message timed out, once another copy of
// the same id is pending, is not taken for that copy's.
func TestLateVerdictDoesNotApplyToAnotherCopy(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 2)
	first, second := msg("m"), msg("m")
	r.HandleMessage(t0, nid(1), first)
	now := t0.Add(cfg.ValidationTimeout)
	r.Heartbeat(now)
	if _, st := r.HandleMessage(now, nid(2), second); st != Pending {
		t.Fatalf("second copy after the first timed out: %v", st)
	}
	if out := r.validated(now, first.ID, first, Reject, false); len(out.Penalize) != 0 {
		t.Fatalf("the first copy's late verdict penalised %v", out.Penalize)
	}
	if out := r.validated(now, second.ID, second, Accept, false); len(out.Deliver) != 1 {
		t.Fatal("the second copy was not delivered")
	}
}

// TestReplayAfterTheSeenCacheFlushIsDropped: a peer that is itself an origin sends SeenMax fresh messages; the
// oldest ids leave the seen-cache, but its replay of a message delivered before, once older than the freshness
// window (SeenTTL - MaxClockSkew), is dropped as stale rather than delivered a second time. Within the window it
// still gets through (the known limit documented on SeenMax).
func TestReplayAfterTheSeenCacheFlushIsDropped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SeenMax = 1000
	r := joined(t, cfg, 2)
	victim := msg("payment #1")
	out, _ := receive(t, r, t0, nid(2), victim, Accept)
	if len(out.Deliver) != 1 {
		t.Fatal("first copy not delivered")
	}
	now := t0.Add(cfg.SeenTTL - cfg.MaxClockSkew)
	for i := range cfg.SeenMax {
		m := msg(fmt.Sprintf("filler %d", i))
		m.OriginTime = now.UnixNano()
		receive(t, r, now, nid(1), m, Accept)
	}
	if r.Seen(victim.ID) {
		t.Fatal("the victim's id is still seen: the flush did not happen")
	}
	out, st := receive(t, r, now, nid(1), msg("payment #1"), Accept)
	if st != Dropped || len(out.Deliver) != 0 || len(out.Penalize) != 0 || r.Stats().Stale != 1 {
		t.Fatalf("replay of a delivered message: %v, delivered again %d time(s), %d penalties, %d stale; want dropped as stale, no penalty",
			st, len(out.Deliver), len(out.Penalize), r.Stats().Stale)
	}
	// From the future beyond the skew allowed: dropped too.
	ahead := msg("ahead")
	ahead.OriginTime = now.Add(cfg.MaxClockSkew + time.Second).UnixNano()
	if _, st := r.HandleMessage(now, nid(1), ahead); st != Dropped || r.Stats().Stale != 2 {
		t.Fatalf("a message from beyond the skew ahead: %v, want dropped as stale", st)
	}
	ahead.OriginTime = now.Add(cfg.MaxClockSkew).UnixNano()
	if _, st := r.HandleMessage(now, nid(1), ahead); st != Pending {
		t.Fatalf("a message MaxClockSkew ahead: %v, want pending", st)
	}
}

// A rejection whose verdict comes after its sender left (connect, send a message the validator rejects,
// disconnect before the verdict) counts in the sender's retained penalty: repeating it reaches the ban, and the
// count greets the peer when it comes back.
func TestPenaltiesOfADepartedPeerAreKept(t *testing.T) {
	cfg := DefaultConfig()
	r := newTestRouter(t, cfg)
	r.clock(t0)
	var p Penalty
	for i := range cfg.PenaltyThreshold {
		if err := r.AddPeer(nid(1)); err != nil {
			t.Fatal(err)
		}
		r.RemovePeer(t0.Add(time.Duration(i)*time.Second), nid(1))
		p = r.PenalizePeer(nid(1)) // the verdict, once it has gone
	}
	if p.Count != cfg.PenaltyThreshold || !p.Ban {
		t.Fatalf("after %d rejections each verdicted after the sender left: %+v, want a ban", cfg.PenaltyThreshold, p)
	}
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	if p := r.PenalizePeer(nid(1)); p.Count != cfg.PenaltyThreshold+1 {
		t.Fatalf("back again: %+v, want the count kept", p)
	}
}

// A peer's count of rejected messages outlives its connection for PenaltyRetention: reconnecting does not wipe its
// record, so two rejections, a reconnect and a third reach PenaltyThreshold (3). Past the retention, or beyond
// MaxPeers departed peers (the longest departed first), the record is forgotten.
func TestPenaltiesSurviveAReconnect(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeers = 2
	r := newTestRouter(t, cfg)
	r.clock(t0)
	reconnect := func(id session.NodeID, at time.Time) {
		t.Helper()
		r.RemovePeer(at, id)
		r.clock(at)
		if err := r.AddPeer(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []session.NodeID{nid(1), nid(2)} {
		if err := r.AddPeer(id); err != nil {
			t.Fatal(err)
		}
	}
	r.PenalizePeer(nid(1))
	r.PenalizePeer(nid(1))
	reconnect(nid(1), t0.Add(time.Minute))
	if p := r.PenalizePeer(nid(1)); p.Count != 3 || !p.Ban {
		t.Fatalf("third rejection after a reconnect: %+v, want count 3 and a ban", p)
	}
	// Past PenaltyRetention the record is forgotten.
	r.RemovePeer(t0.Add(2*time.Minute), nid(1))
	reconnect(nid(2), t0.Add(2*time.Minute)) // no penalty: nothing kept
	r.clock(t0.Add(2*time.Minute + cfg.PenaltyRetention))
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	if p := r.PenalizePeer(nid(1)); p.Count != 1 {
		t.Fatalf("a rejection after the retention: %+v, want count 1", p)
	}
	// At most MaxPeers departed peers are kept, the longest departed forgotten first: 1 leaves, then 2, then 3.
	at := t0.Add(3 * time.Hour)
	r.PenalizePeer(nid(2))
	r.RemovePeer(at, nid(1))
	r.RemovePeer(at.Add(time.Second), nid(2))
	if err := r.AddPeer(nid(3)); err != nil {
		t.Fatal(err)
	}
	r.PenalizePeer(nid(3))
	r.RemovePeer(at.Add(2*time.Second), nid(3))
	if len(r.retained) != cfg.MaxPeers {
		t.Fatalf("%d departed peers kept, want %d", len(r.retained), cfg.MaxPeers)
	}
	if _, ok := r.retained[nid(1)]; ok {
		t.Error("the longest departed peer is still kept")
	}
	for _, id := range []session.NodeID{nid(2), nid(3)} {
		if err := r.AddPeer(id); err != nil {
			t.Fatal(err)
		}
		if p := r.PenalizePeer(id); p.Count != 2 {
			t.Errorf("peer %s back: count %d after one more rejection, want 2", id.Short(), p.Count)
		}
	}
}

// A rejection verdicted after its sender left updates that peer's retained count in place: with MaxPeers departed
// peers kept, it took the place of the longest departed, whose record was forgotten though no more than MaxPeers
// had left (a peer with many messages awaiting their verdicts wiped as many other records; a mutation audit's
// finding).
func TestARetainedPenaltyUpdatedTakesNoOtherPeersPlace(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeers = 2
	r := newTestRouter(t, cfg)
	r.clock(t0)
	for _, i := range []int{1, 2} {
		if err := r.AddPeer(nid(i)); err != nil {
			t.Fatal(err)
		}
		r.PenalizePeer(nid(i))
		r.RemovePeer(t0.Add(time.Duration(i)*time.Second), nid(i)) // 1 leaves first
	}
	if p := r.PenalizePeer(nid(2)); p.Count != 2 {
		t.Fatalf("a verdict after peer 2 left: count %d, want 2", p.Count)
	}
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	if p := r.PenalizePeer(nid(1)); p.Count != 2 {
		t.Errorf("peer 1 back: count %d after one more rejection, want 2 (its record kept)", p.Count)
	}
}

// Only departed peers with rejected messages are remembered: peers that leave with a clean record take no place
// among the MaxPeers kept, so they cannot push out an offender's record.
func TestCleanDepartedPeersDoNotPushOutAPenalty(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeers = 2
	r := newTestRouter(t, cfg)
	r.clock(t0)
	for i := 1; i <= 3; i++ {
		if err := r.AddPeer(nid(i)); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			r.PenalizePeer(nid(1))
		}
		r.RemovePeer(t0.Add(time.Duration(i)*time.Second), nid(i))
	}
	if _, ok := r.retained[nid(1)]; !ok || len(r.retained) != 1 {
		t.Errorf("%d departed peers kept, peer 1's record kept %v; want peer 1's only", len(r.retained), ok)
	}
}

// A verdict on a departed peer's message PenaltyRetention or more after it left starts its count afresh, as its
// return would.
func TestAVerdictPastTheRetentionStartsAfresh(t *testing.T) {
	cfg := DefaultConfig()
	r := newTestRouter(t, cfg)
	r.clock(t0)
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	r.PenalizePeer(nid(1))
	r.RemovePeer(t0, nid(1))
	r.clock(t0.Add(cfg.PenaltyRetention))
	if p := r.PenalizePeer(nid(1)); p.Count != 1 {
		t.Errorf("a verdict PenaltyRetention after the peer left: count %d, want 1", p.Count)
	}
}

// TestMadeUpRootsDoNotLockOutARealRoot: treeState.heard is bounded (maxHeardRoots) for all peers together.
// One topic peer reporting 1024 made-up roots every heartbeat, renewing their beacons, fills it; the roots no peer's
// report names then make room, and an honest report of a root not heard of yet is taken: here a live peer that is a
// better root than the node itself.
func TestMadeUpRootsDoNotLockOutARealRoot(t *testing.T) {
	r := treeRouter(t, 2)
	fake := func(i int) session.NodeID {
		var id session.NodeID
		id[0], id[1], id[2], id[31] = 0xff, byte(i), byte(i>>8), 1 // larger than every real id here: never chosen
		return id
	}
	now := t0
	for beat := range 90 { // past 16*TreeStaleBeats, when an entry not renewed is forgotten
		for i := range maxHeardRoots {
			r.HandleTree(now, nid(1), TreeInfo{Topic: topicA, Root: fake(i), Seq: uint64(beat + 1), Dist: 0})
		}
		// Honest peer 2 is its own root (smaller id than the node: it should be the node's root and parent).
		r.HandleTree(now, nid(2), report(2, 0, -1, uint64(beat+1)))
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	if root, parent, _, _ := r.TreeLinks(topicA); root != nid(2) || parent != nid(2) {
		t.Fatalf("after 90 heartbeats of honest reports the node still does not take peer 2 as root and parent (root is self: %v)", root == nid(self))
	}
}

// A made-up beacon from the future (a hostile peer's report of the root with Seq MaxUint64) does not make a live
// root look dead: it is cut to beaconLead heartbeats ahead, and the root's real beacons overtake it before
// TreeStaleBeats. Taken as it was, it stopped them from advancing, the node gave the root up and passed the
// made-up beacon on, moving the whole tree.
func TestTreeMadeUpBeaconDoesNotKillALiveRoot(t *testing.T) {
	r := treeRouter(t, 2)
	hb := DefaultConfig().HeartbeatInterval
	now := t0
	rootReport := func() TreeInfo { return rankedReport(1, maxTreeRank, 0, -1, r.beaconAt(now)) }
	r.HandleTree(now, nid(1), rootReport())
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) {
		t.Fatalf("root %s, want 1", root.Short())
	}
	forged := rankedReport(1, maxTreeRank, 1, 1, ^uint64(0))
	r.HandleTree(now, nid(2), forged)
	for beat := range 4 * DefaultConfig().TreeStaleBeats {
		now = now.Add(hb)
		r.Heartbeat(now)
		r.HandleTree(now, nid(1), rootReport())
		if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) {
			t.Fatalf("heartbeat %d after the made-up beacon: root %s, want the live root 1", beat+1, root.Short())
		}
	}
}
