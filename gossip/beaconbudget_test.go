package gossip

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// What the beacon signature checks a peer's tree reports call for cost its control budget
// (Router.HandleControlPaid, beaconCheckCost).

// beaconFloodRPCs returns a hostile peer's RPCs of made-up but valid beacons: one per root of roots, reporting it
// in each flood topic at rank 1 with beacon seq, signed by it. Sent each heartbeat with a newer seq, each report of
// each RPC calls for a check (maxBeaconChecksPerBeat roots per topic and heartbeat, with 8 roots).
func beaconFloodRPCs(roots []*session.Identity, seq uint64) []*messages.GossipRPC {
	out := make([]*messages.GossipRPC, 0, len(roots))
	for _, root := range roots {
		id := root.NodeID()
		c := &messages.GossipControl{}
		for j := range floodTopics {
			topic := floodTopic(j)
			c.Tree = append(c.Tree, &messages.GossipTree{Topic: topic, Root: id.Bytes(), RootRank: 1, Seq: seq, Dist: 1,
				Path: []uint32{pathID(id), 7}, Sig: root.Sign(AppendBeaconSignedBytes(nil, topic, id, 1, seq))})
		}
		out = append(out, &messages.GossipRPC{Control: c})
	}
	return out
}

// floodRoots returns n made-up roots' identities.
func floodRoots(tb testing.TB, n int) []*session.Identity {
	roots := make([]*session.Identity, n)
	for i := range roots {
		roots[i] = simIdentity(tb, 59, i)
	}
	return roots
}

// A peer that reports, every heartbeat in every one of 64 topics, maxBeaconChecksPerBeat made-up roots with valid
// signatures of fresh beacons has only the checks its control budget pays for done: at most the three quarters of
// its burst past the reserve and its rate since, at beaconCheckCost each. Its RPCs fit the budget (8 a second), so each was
// taken before stop 59 and had its 64 reports checked, 512 checks a second (~18 ms of the relay's goroutine).
func TestAPeerFloodingMadeUpBeaconsGetsTheChecksItsBudgetPays(t *testing.T) {
	now := time.Now()
	a := verifyingFloodShell(t, now)
	a.clock = func() time.Time { return now }
	roots := floodRoots(t, maxBeaconChecksPerBeat)
	const seconds = 10
	before := a.router.Stats()
	for range seconds {
		for _, rpc := range beaconFloodRPCs(roots, a.router.beaconAt(now)) {
			now = now.Add(time.Second / time.Duration(len(roots)))
			a.handleRPC(nid(floodAttacker), rpc)
		}
		a.heartbeat(now)
	}
	st := a.router.Stats()
	checked, unpaid := st.TreeBeaconsChecked-before.TreeBeaconsChecked, st.TreeBeaconsUnpaid-before.TreeBeaconsUnpaid
	paid := (float64(a.cfg.PeerControlBurst)*3/4 + a.cfg.PeerControlRate*seconds) / beaconCheckCost
	t.Logf("%d s of made-up beacons: %d checked, %d left unpaid; the budget pays for %.0f", seconds, checked, unpaid, paid)
	if float64(checked) > paid || checked < uint64(paid/2) || unpaid == 0 {
		t.Fatalf("%d beacons of made-up roots checked (%d left unpaid) in %d s: the control budget pays for %.0f",
			checked, unpaid, seconds, paid)
	}
	if a.stats.RateLimitedControl != 0 {
		t.Fatalf("%d of the peer's RPCs refused: its checks spent the reserve kept for its control", a.stats.RateLimitedControl)
	}
}

// An honest root in 64 topics, whose every heartbeat's RPC to the node carries an IHAVE in each and, every period
// heartbeats, its report in each with its newer beacon (a tree link's period is 2), has none of its control refused
// and its beacon taken in every topic: every check paid with a period of 2, and with a report every heartbeat
// (~2200 units a second, past the rate) the checks left unpaid fall on other topics from one report to the next
// (but for as many as their count grew by), so that no topic's root is given up (TreeStaleBeats). Before the reports were taken from a start that moved on, the funds ran out
// at the same topics each time.
func TestAnHonestRootsBeaconsInManyTopicsArePaidFor(t *testing.T) {
	for _, period := range []int{2, 1} {
		now := time.Now()
		a := verifyingFloodShell(t, now)
		a.clock = func() time.Time { return now }
		root, id := addFloodRoot(t, a)
		const beats = 40
		reports := 0
		for k := range beats {
			now = now.Add(a.cfg.Router.HeartbeatInterval / 2)
			c := rootControl(root, k, a.router.beaconAt(now), k%period == 0)
			if len(c.Tree) > 0 {
				reports++
			}
			a.handleRPC(id, &messages.GossipRPC{Control: c})
			now = now.Add(a.cfg.Router.HeartbeatInterval / 2)
			a.heartbeat(now)
			for j := range floodTopics {
				if ts := a.router.topics[floodTopic(j)].tree; !a.router.alive(ts, id) {
					t.Fatalf("report period %d, heartbeat %d: the honest root of %s given up", period, k, floodTopic(j))
				}
			}
		}
		st := a.router.Stats()
		t.Logf("report period %d: %d beacons checked, %d left unpaid", period, st.TreeBeaconsChecked, st.TreeBeaconsUnpaid)
		if a.stats.RateLimitedControl != 0 {
			t.Errorf("report period %d: %d RPCs of the honest root's control refused", period, a.stats.RateLimitedControl)
		}
		if period == 2 && (st.TreeBeaconsUnpaid != 0 || st.TreeBeaconsChecked != uint64(reports*floodTopics)) {
			t.Errorf("report period 2: %d beacons checked, %d unpaid; want all %d checked", st.TreeBeaconsChecked,
				st.TreeBeaconsUnpaid, reports*floodTopics)
		}
	}
}

// The start from which a peer's tree reports are taken moves on with that peer's own unpaid checks only: another
// peer's cannot hold it in place. Until the review of stop 59 it moved with the node's count of all peers' unpaid
// checks (Stats.TreeBeaconsUnpaid), so that a peer with its budget spent, sending before each RPC of an honest root
// in 64 topics the made-up beacons that brought that count back to the same value modulo 64 (all left unpaid, no
// penalty), had the funds run out at the same topics of the root's every report, whose beacons were then never
// taken: the root was given up there within TreeStaleBeats. (The count is read here; an attacker blind to it, sending
// a constant 56 to 59, about 64 less the root's steady ~6 unpaid, had the root given up as soon.)
func TestAnotherPeersUnpaidChecksDoNotHoldAnHonestRootsReportsInPlace(t *testing.T) {
	now := time.Now()
	a := verifyingFloodShell(t, now)
	a.clock = func() time.Time { return now }
	root, id := addFloodRoot(t, a)
	att := nid(floodAttacker)
	made := 0 // made-up roots so far
	// shift has the attacker send, its budget spent down to its reserve, as many fresh made-up beacons (one per
	// topic, each left unpaid) as bring the node's unpaid count to a multiple of 64.
	shift := func() {
		x := int((floodTopics - a.router.Stats().TreeBeaconsUnpaid%floodTopics) % floodTopics)
		if x == 0 {
			return
		}
		c := &messages.GossipControl{}
		seq := a.router.beaconAt(now)
		for j := range x {
			made++
			var r session.NodeID
			r[0], r[1], r[2], r[31] = 0xee, byte(made), byte(made>>8), 7
			c.Tree = append(c.Tree, &messages.GossipTree{Topic: floodTopic(j), Root: r.Bytes(), RootRank: 1, Seq: seq,
				Dist: 1, Path: []uint32{pathID(r), 7}, Sig: make([]byte, 64)})
		}
		cost := controlCost(&messages.GossipRPC{Control: c}, a.cfg.Router.MaxIHaveLength, a.cfg.Router.MaxPeerTopics)
		if spend := a.control.Tokens(att, now) - float64(a.cfg.PeerControlBurst)/4 - cost - 1; spend > 0 {
			a.control.AllowN(att, spend, now) // on control of other kinds
		}
		a.handleRPC(att, &messages.GossipRPC{Control: c})
	}
	const beats = 40
	for k := range beats {
		now = now.Add(a.cfg.Router.HeartbeatInterval / 2)
		c := rootControl(root, k, a.router.beaconAt(now), true)
		shift()
		a.handleRPC(id, &messages.GossipRPC{Control: c})
		now = now.Add(a.cfg.Router.HeartbeatInterval / 2)
		a.heartbeat(now)
		for j := range floodTopics {
			if ts := a.router.topics[floodTopic(j)].tree; !a.router.alive(ts, id) {
				t.Fatalf("heartbeat %d: the honest root of %s given up, its beacons left unpaid at every report while "+
					"another peer's unpaid checks (%d made-up beacons) held the start in place", k, floodTopic(j), made)
			}
		}
	}
	st := a.router.Stats()
	t.Logf("%d beacons checked, %d left unpaid, %d made up", st.TreeBeaconsChecked, st.TreeBeaconsUnpaid, made)
	if made == 0 {
		t.Fatal("the attacker sent no made-up beacon: the test tests nothing")
	}
}

// addFloodRoot adds to a's Router an honest peer subscribed to every flood topic, whose identity (returned with its
// NodeID) signs the beacons of the roots it reports.
func addFloodRoot(t *testing.T, a *relayActor) (*session.Identity, session.NodeID) {
	t.Helper()
	root := simIdentity(t, 59, 100)
	id := root.NodeID()
	if err := a.router.AddPeer(id); err != nil {
		t.Fatal(err)
	}
	for j := range floodTopics {
		if err := a.router.PeerSubscribed(id, floodTopic(j)); err != nil {
			t.Fatal(err)
		}
	}
	a.peers[id] = true
	return root, id
}

// rootControl is the control an honest root sends at its k-th heartbeat in every flood topic: an IHAVE of 4 fresh
// ids each and, with report, its report as the root with its beacon seq, signed.
func rootControl(root *session.Identity, k int, seq uint64, report bool) *messages.GossipControl {
	id := root.NodeID()
	c := &messages.GossipControl{}
	for j := range floodTopics {
		topic := floodTopic(j)
		c.Ihave = append(c.Ihave, &messages.GossipIHave{Topic: topic, Ids: floodIDs((k*floodTopics+j)*4, 4)})
		if report {
			c.Tree = append(c.Tree, &messages.GossipTree{Topic: topic, Root: id.Bytes(), Seq: seq, Path: []uint32{pathID(id)},
				Sig: root.Sign(AppendBeaconSignedBytes(nil, topic, id, 0, seq))})
		}
	}
	return c
}
