package routing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// askedFindNode is one FindNode a routing actor sent: to whom, for which target.
type askedFindNode struct {
	peer   session.NodeID
	target Key
}

// introNet answers every FindNode at once with an empty Nodes (the peer is up) and reports it on asked.
type introNet struct {
	stallingNet
	asked chan askedFindNode
}

func (n *introNet) Request(_ context.Context, peer session.NodeID, _ string, m proto.Message) (proto.Message, error) {
	fn, ok := m.(*messages.FindNode)
	if !ok {
		return nil, fmt.Errorf("test: asked %T", m)
	}
	n.asked <- askedFindNode{peer: peer, target: Key(fn.GetTarget())}
	return &messages.Nodes{}, nil
}

// neighbourRecords returns the records of n nodes (at most 150), at addresses the table takes.
func neighbourRecords(t *testing.T, n int) []*messages.NodeRecord {
	t.Helper()
	recs := make([]*messages.NodeRecord, n)
	for i := range recs {
		// One /24 each: the table's IP limits take them all.
		r, err := NewRecord(identity(t, byte(1+i)), 1, []string{fmt.Sprintf("%d.51.100.1:4001", 100+i)})
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = r
	}
	return recs
}

// A node that learns of neighbours from another node's word (AddRecords, as a peer store's or an answer's) introduces
// itself to each an IntroduceDelay later: a FindNode of its own key, which tells the neighbour of it, counted in
// Stats.Introductions (and Checks). Without the introductions, the revalidation alone would ask one of them per
// RevalidateInterval (an hour here).
func TestANeighbourLearnedSecondHandIsIntroducedTo(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntroduceDelay = 50 * time.Millisecond
	cfg.RevalidateInterval, cfg.RevalidateAnsweredInterval = time.Hour, time.Hour
	self := identity(t, 200).NodeID()
	net := &introNet{stallingNet: stallingNet{id: self}, asked: make(chan askedFindNode, 16)}
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	recs := neighbourRecords(t, 3)
	sys.Root.Send(pid, &AddRecords{Records: recs})
	introduced := map[session.NodeID]bool{}
	deadline := time.After(10 * time.Second)
	for len(introduced) < len(recs) {
		select {
		case a := <-net.asked:
			if a.target != KeyOf(self) {
				t.Fatalf("the introduction to %s asked for %x, want the node's own key", a.peer.Short(), a.target[:4])
			}
			introduced[a.peer] = true
		case <-deadline:
			t.Fatalf("%d of %d neighbours introduced to within 10s", len(introduced), len(recs))
		}
	}
	poll.Until(t, 5*time.Second, func() bool {
		reply := make(chan Snapshot, 1)
		sys.Root.Send(pid, &SnapshotRequest{Reply: reply})
		s := <-reply
		answered := 0
		for _, e := range s.Entries {
			if e.Answered() {
				answered++
			}
		}
		return s.Stats.Introductions == uint64(len(recs)) && s.Stats.Checks == uint64(len(recs)) && answered == len(recs)
	}, "the introductions counted, their answers marking the neighbours alive")
}

// introductionRig returns a routing actor driven by hand over an introNet, with the given IntroduceDelay, and its
// net (revalidationRig.actor stops its introduction timer with the test).
func introductionRig(t *testing.T, delay time.Duration) (*routingActor, *introNet, *revalidationRig) {
	rig := newRevalidationRig(t, 41)
	rig.cfg.IntroduceDelay = delay
	rig.cfg.MaxIntroductions = rig.cfg.Table.K // a tick's introductions all at once, unless a test bounds them
	rig.self = identity(t, 200).NodeID()
	var err error
	if rig.tab, err = NewTable(rig.self, rig.cfg.Table); err != nil {
		t.Fatal(err)
	}
	net := &introNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan askedFindNode, 64)}
	return rig.actor(t, net), net, rig
}

// tickIntroductions runs a's introduction tick (its timer stopped first) and returns the peers it asked, once every
// exchange has ended.
func tickIntroductions(a *routingActor, net *introNet) map[session.NodeID]bool {
	if a.introTimer != nil {
		a.introTimer.Stop()
	}
	a.introduce()
	a.wg.Wait()
	asked := map[session.NodeID]bool{}
	for {
		select {
		case x := <-net.asked:
			asked[x.peer] = true
		default:
			return asked
		}
	}
}

// A node heard of from another node's word arms the introduction tick; one that sent its own record does not, nor
// does anything with IntroduceDelay 0. The tick introduces the node to the neighbours that have neither answered
// nor asked it: not to one that answered or asked meanwhile, left the table, failed a check, is being checked or
// was found busy.
func TestOnlyANeighbourThatMayNotKnowTheNodeIsIntroducedTo(t *testing.T) {
	a, net, _ := introductionRig(t, time.Hour)
	recs := neighbourRecords(t, 7)
	id := func(i int) session.NodeID { return session.NodeID(recs[i].GetId()) }
	a.addRecord(recs[1], t0, true, true) // its own record, over its own connection, which answered
	a.table.MarkAlive(id(1), t0)
	if a.introTimer != nil {
		t.Fatal("a node's own record armed the introductions")
	}
	a.addRecord(recs[0], t0, true, false)
	armed := a.introTimer
	if armed == nil {
		t.Fatal("a node heard of second-hand armed no introduction")
	}
	for _, i := range []int{2, 3, 4, 5, 6} {
		a.addRecord(recs[i], t0, true, false)
	}
	if a.introTimer != armed {
		t.Fatal("each node heard of second-hand armed a timer of its own: one tick introduces the node to them all")
	}
	a.table.MarkAlive(id(3), t0.Add(time.Second)) // it asked this node meanwhile
	a.table.Remove(id(4))                         // penalised meanwhile
	if a.table.MarkFailed(id(5), t0.Add(time.Second), t0.Add(time.Second)) {
		t.Fatal("one failed check evicted the entry: the test needs TableConfig.MaxFailures > 1")
	}
	a.checking[id(6)] = true // the revalidation checks it already
	a.busy[id(2)] = struct{}{}
	asked := tickIntroductions(a, net)
	if len(asked) != 1 || !asked[id(0)] || a.stats.Introductions != 1 || a.introTimer != nil {
		t.Fatalf("introduced to %d peers (%d counted, the next tick armed: %v), want only the first record's node",
			len(asked), a.stats.Introductions, a.introTimer != nil)
	}

	off, _, _ := introductionRig(t, 0)
	off.addRecord(recs[0], t0, true, false)
	if off.introTimer != nil {
		t.Fatal("IntroduceDelay 0 armed the introductions")
	}
}

// A tick introduces the node to at most Table.K of its neighbours, the nearest first, and to no node that is none
// (many nodes are nearer to it than this node, and it is not among this node's nearest); it arms the next tick for
// the others.
func TestIntroductionsGoToTheNearestNeighboursKATick(t *testing.T) {
	a, net, rig := introductionRig(t, time.Hour)
	k := rig.cfg.Table.K
	for range 400 {
		rig.tab.Add(Entry{ID: randID(rig.rng), Addr: randAddr(rig.rng)}, t0)
	}
	var neighbours []session.NodeID
	for _, e := range rig.tab.Closest(rig.tab.SelfKey(), rig.tab.Len()) {
		if rig.tab.Neighbours(e.ID, k) {
			neighbours = append(neighbours, e.ID)
		}
	}
	if len(neighbours) <= k || len(neighbours) == rig.tab.Len() {
		t.Fatalf("%d neighbours of %d entries: the test needs more than K, and some entries that are none", len(neighbours), rig.tab.Len())
	}
	asked := tickIntroductions(a, net)
	for _, id := range neighbours[:k] {
		if !asked[id] {
			t.Fatalf("introduced to %d peers, not to %s, one of the %d nearest neighbours", len(asked), id.Short(), k)
		}
	}
	if len(asked) != k || a.introTimer == nil {
		t.Fatalf("introduced to %d peers (the next tick armed: %v), want K = %d and the next tick armed", len(asked), a.introTimer != nil, k)
	}
	for id := range asked { // their checks' answers never reach the rig's sink: the actor is driven by hand
		a.exchangeDone(&exchangeDone{peer: id, check: true, reply: &messages.Nodes{}}, t0.Add(time.Second))
	}
	asked = tickIntroductions(a, net)
	if len(asked) != len(neighbours)-k {
		t.Fatalf("the next tick introduced to %d peers, want the %d other neighbours", len(asked), len(neighbours)-k)
	}
	for id := range asked {
		if !rig.tab.Neighbours(id, k) {
			t.Fatalf("introduced to %s, no neighbour", id.Short())
		}
	}
}

// The introductions that find MaxInFlight exchanges in progress wait for the next tick, which is armed again; none
// starts once the actor's context ended, and no tick is armed then.
func TestIntroductionsWaitForRoomAndEndWithTheActor(t *testing.T) {
	a, net, _ := introductionRig(t, time.Hour)
	for _, r := range neighbourRecords(t, 5) {
		a.addRecord(r, t0, true, false)
	}
	a.cfg.MaxInFlight = 3
	a.inFlight = 1 // another exchange in progress
	if asked := tickIntroductions(a, net); len(asked) != 2 || a.stats.Introductions != 2 || a.introTimer == nil {
		t.Fatalf("with room for 2 exchanges: introduced to %d peers (%d counted, the next tick armed: %v), want 2",
			len(asked), a.stats.Introductions, a.introTimer != nil)
	}
	a.inFlight, a.cfg.MaxInFlight = 0, 64
	if asked := tickIntroductions(a, net); len(asked) != 3 || a.stats.Introductions != 5 || a.introTimer != nil {
		t.Fatalf("the next tick introduced to %d peers (%d counted in all, a tick armed: %v), want the 3 left",
			len(asked), a.stats.Introductions, a.introTimer != nil)
	}

	b, net, _ := introductionRig(t, time.Hour)
	b.addRecord(neighbourRecords(t, 1)[0], t0, true, false)
	b.cancel()
	if asked := tickIntroductions(b, net); len(asked) != 0 || b.introTimer != nil {
		t.Fatalf("after the actor's end: introduced to %d peers (a tick armed: %v)", len(asked), b.introTimer != nil)
	}
}

// A negative IntroduceDelay is refused with ErrInvalidConfig; 0 (no introductions) is valid.
func TestIntroduceDelayIsValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IntroduceDelay = -time.Second
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a negative IntroduceDelay: %v, want ErrInvalidConfig", err)
	}
	cfg.IntroduceDelay = 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("IntroduceDelay 0: %v", err)
	}
}

// The introductions' waits lie in [d, 3d/2], the longest ones too (d capped at half the largest Duration, 146
// years): a delay past 2/3 of the largest Duration overflowed into a negative wait, and the introductions went out
// at once (a review's finding).
func TestIntroductionWaitsNeverComeEarly(t *testing.T) {
	rng := newRand(43)
	for _, d := range []time.Duration{time.Nanosecond, 8 * time.Second, time.Duration(math.MaxInt64)} {
		for range 100 {
			if w, c := introductionWait(rng, d), min(d, math.MaxInt64/2); w < c || w > c+c/2 {
				t.Fatalf("a wait of %v for IntroduceDelay %v", w, d)
			}
		}
	}
}

// A tick starts at most MaxIntroductions introductions at once; as each ends, the next of the tick's starts, nearest
// first, until none is left due, and no tick is armed for fewer than K.
func TestIntroductionsStartAtMostMaxIntroductionsAtOnce(t *testing.T) {
	a, net, _ := introductionRig(t, time.Hour)
	a.cfg.MaxIntroductions = 2
	for _, r := range neighbourRecords(t, 5) {
		a.addRecord(r, t0, true, false)
	}
	inProgress := tickIntroductions(a, net)
	all := maps.Clone(inProgress)
	for len(inProgress) > 0 {
		if len(inProgress) > 2 {
			t.Fatalf("%d introductions in progress, more than MaxIntroductions (2)", len(inProgress))
		}
		for id := range inProgress { // one ends, answered: the next starts
			delete(inProgress, id)
			a.exchangeDone(&exchangeDone{peer: id, check: true, reply: &messages.Nodes{}}, t0.Add(time.Second))
			break
		}
		a.wg.Wait()
		for more := true; more; {
			select {
			case x := <-net.asked:
				if all[x.peer] {
					t.Fatalf("%s introduced to twice", x.peer.Short())
				}
				all[x.peer], inProgress[x.peer] = true, true
			default:
				more = false
			}
		}
	}
	if len(all) != 5 || a.stats.Introductions != 5 || a.introTimer != nil {
		t.Fatalf("introduced to %d peers (%d counted, the next tick armed: %v), want the 5 neighbours, no tick armed",
			len(all), a.stats.Introductions, a.introTimer != nil)
	}
}

// MaxIntroductions must be positive.
func TestMaxIntroductionsIsValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxIntroductions = 0
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "MaxIntroductions") {
		t.Fatalf("MaxIntroductions 0: %v, want ErrInvalidConfig naming it", err)
	}
}
