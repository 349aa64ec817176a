package gossip

import (
	"fmt"
	"testing"
	"time"
)

// TestTreeGivesUpARootWhoseMessagesComeRepaired checks the defence against a root that withholds messages: once
// the node's place has settled, distrustRepaired of the last distrustWindow messages it accepted coming repaired
// (pulled by IWANT) or first from a tree its root outranks, from distrustPeers peers at least, make it give the root
// up, for distrustBeats heartbeats, then twice as long.
func TestTreeGivesUpARootWhoseMessagesComeRepaired(t *testing.T) {
	r := treeRouter(t, 3)
	now, seq := t0, uint64(5)
	beat := func() {
		seq++
		r.HandleTree(now, nid(1), report(1, 0, -1, seq))
		r.HandleTree(now, nid(2), report(1, 1, 1, seq))
		r.HandleTree(now, nid(3), report(3, 0, -1, seq)) // another root, outranked by 1 (a larger id)
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	root := func() int {
		got, _, _, _ := r.TreeLinks(topicA)
		return int(got[0]) | int(got[1])<<8
	}
	n := 0
	accept := func(from int, pulled bool) {
		n++
		m := msg(fmt.Sprintf("m%d", n))
		if pulled { // announced by from, asked for by IWANT, then sent
			out := r.HandleControl(now, nid(from), &Control{IHave: []IHave{{Topic: topicA, IDs: []MsgID{DefaultMsgID(m)}}}})
			if len(out.Send) != 1 || out.Send[0].Control == nil || len(out.Send[0].Control.IWant) != 1 {
				t.Fatalf("IHAVE of an unknown message not answered by IWANT: %+v", out.Send)
			}
		}
		receive(t, r, now, nid(from), m, Accept)
	}
	beat()
	if root() != 1 {
		t.Fatalf("root %d, want 1", root())
	}
	for range distrustRepaired {
		accept(1, true) // right after the move: a repair of what was published before it
	}
	if root() != 1 || r.Stats().TreeDistrusted != 0 {
		t.Fatal("gave the root up for repairs within distrustSettleBeats of taking it")
	}
	for range distrustSettleBeats {
		beat()
	}
	for range distrustWindow {
		accept(1, false)
	}
	for range distrustRepaired + 2 {
		accept(2, true) // all from one peer: it may be the one answering ahead of the tree
	}
	if root() != 1 {
		t.Fatal("gave the root up for messages pulled from a single peer")
	}
	for range distrustWindow {
		accept(1, false)
	}
	accept(1, true)
	accept(2, true)
	accept(1, true)
	accept(2, true)
	accept(3, false) // crossed over from root 3's tree: the node's own tree did not bring it
	if root() != 1 {
		t.Fatalf("gave the root up after %d of %d messages came repaired or from the lesser tree", distrustRepaired-1, distrustWindow)
	}
	accept(2, false)
	accept(3, false)
	if root() != 3 || r.Stats().TreeDistrusted != 1 {
		t.Fatalf("root %d (distrusted %d) after %d of the last %d messages came repaired or from the lesser tree, from %d peers, want root 3",
			root(), r.Stats().TreeDistrusted, distrustRepaired, distrustWindow, distrustPeers)
	}
	for range distrustBeats - 1 {
		beat()
		if root() != 3 {
			t.Fatal("took the root given up again before distrustBeats")
		}
	}
	beat()
	if root() != 1 {
		t.Fatalf("root %d distrustBeats after root 1 was given up, want 1 again", root())
	}
	for range distrustSettleBeats {
		beat()
	}
	for i := range distrustRepaired {
		accept(1+i%3, i%3 != 2)
	}
	if root() != 3 || r.Stats().TreeDistrusted != 2 {
		t.Fatal("root 1 not given up again")
	}
	for range distrustBeats {
		beat()
	}
	if root() != 3 {
		t.Fatal("a second distrust did not last twice as long")
	}
}

// TestTreeLeavesAWithholdingParentBeforeTheRoot: when the repairs come while the node's parent is not the root, the
// parent is the first suspect: the node takes another parent and keeps the root. Only if repairs go on under the
// new parent within distrustBeats does it give the root up.
func TestTreeLeavesAWithholdingParentBeforeTheRoot(t *testing.T) {
	r := treeRouter(t, 4)
	now, seq := t0, uint64(5)
	beat := func() {
		seq++
		r.HandleTree(now, nid(2), report(9, 1, -1, seq)) // 2 and 4 are children of root 9, not a peer
		r.HandleTree(now, nid(4), report(9, 1, -1, seq))
		r.HandleTree(now, nid(1), report(9, 2, -1, seq)) // 1 and 3 deeper in the same tree
		r.HandleTree(now, nid(3), report(9, 2, -1, seq))
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	place := func() (root, parent int) {
		gotRoot, gotParent, _, _ := r.TreeLinks(topicA)
		return int(gotRoot[0]), int(gotParent[0])
	}
	n := 0
	pulled := func(from int) {
		n++
		pullFrom(t, r, now, from, n)
	}
	for range 1 + distrustSettleBeats {
		beat()
	}
	if root, parent := place(); root != 9 || parent != 2 {
		t.Fatalf("root %d, parent %d; want 9 and 2", root, parent)
	}
	for i := range distrustRepaired {
		pulled([]int{1, 3, 4}[i%3]) // parent 2 forwards nothing: everything comes pulled from the others
	}
	if root, parent := place(); root != 9 || parent != 4 || r.Stats().TreeShunned != 1 || r.Stats().TreeDistrusted != 0 {
		t.Fatalf("root %d, parent %d, shunned %d, distrusted %d after the parent withheld; want root 9 kept, parent 4",
			root, parent, r.Stats().TreeShunned, r.Stats().TreeDistrusted)
	}
	for range distrustSettleBeats {
		beat()
		if _, parent := place(); parent != 4 {
			t.Fatalf("parent %d: the shunned parent was taken again", parent)
		}
	}
	for i := range distrustRepaired {
		pulled([]int{1, 2, 3}[i%3]) // the new parent brings nothing either: the root withholds
	}
	if root, _ := place(); root == 9 || r.Stats().TreeDistrusted != 1 || r.Stats().TreeShunned != 1 {
		t.Fatalf("root %d, distrusted %d, shunned %d after repairs under a second parent; want root 9 given up",
			root, r.Stats().TreeDistrusted, r.Stats().TreeShunned)
	}
}

// TestAWithholdingParentThatMovesItsChildrenIsStillLeft: a parent that withholds messages and makes its
// children's distance change every heartbeat (its own reported distance alternating) is left all the same: only a
// change of root or parent restarts the settling and clears the repairs. Each move used to, so such a parent was
// never judged (an audit's finding: p100 753 ms against 100 ms for a parent that only withholds).
func TestAWithholdingParentThatMovesItsChildrenIsStillLeft(t *testing.T) {
	r := treeRouter(t, 4)
	now, seq := t0, uint64(5)
	beat := func() {
		seq++
		r.HandleTree(now, nid(2), report(9, 1+int(seq%2), -1, seq)) // the parent: distance 1, 2, 1, 2...
		for _, p := range []int{1, 3, 4} {
			r.HandleTree(now, nid(p), report(9, 3, -1, seq)) // deeper in the same tree
		}
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	n := 0
	pulled := func(from int) {
		n++
		pullFrom(t, r, now, from, n)
	}
	for range 1 + distrustSettleBeats {
		beat()
	}
	if _, parent, _, _ := r.TreeLinks(topicA); parent[0] != 2 {
		t.Fatalf("parent %d, want 2", parent[0])
	}
	moves := r.Stats().TreeMoves
	for i := range distrustRepaired {
		beat() // the node's distance changes between every two messages
		pulled([]int{1, 3, 4}[i%3])
	}
	if r.Stats().TreeMoves-moves < distrustRepaired {
		t.Fatalf("%d moves: the parent's distance did not move the node", r.Stats().TreeMoves-moves)
	}
	if _, parent, _, _ := r.TreeLinks(topicA); parent[0] == 2 || r.Stats().TreeShunned != 1 {
		t.Fatalf("parent %d, shunned %d after the parent withheld %d messages while moving its children; want it left",
			parent[0], r.Stats().TreeShunned, distrustRepaired)
	}
}

// pullFrom makes the n-th message of the test reach r pulled from peer from: announced by it (IHAVE), then
// accepted from it.
func pullFrom(t *testing.T, r *Router, now time.Time, from, n int) {
	t.Helper()
	m := msg(fmt.Sprintf("m%d", n))
	r.HandleControl(now, nid(from), &Control{IHave: []IHave{{Topic: topicA, IDs: []MsgID{DefaultMsgID(m)}}}})
	receive(t, r, now, nid(from), m, Accept)
}
