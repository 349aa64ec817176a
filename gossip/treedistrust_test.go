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
