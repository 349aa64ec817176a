package routing

import (
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// A node waiting in a replacement cache keeps its place there when re-learning it is refused for its IP group: it
// used to be taken out of the cache first, and was lost.
func TestAWaitingNodeKeepsItsPlaceWhenReLearningItIsRefused(t *testing.T) {
	rng := newRand(11)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest = false
	tab, err := NewTable(self, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.K { // a full bucket at distance 256, each entry its own /24
		tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: fmt.Sprintf("10.%d.1.1:1", i)}, t0)
	}
	waiting := idInBucket(rng, self, 256)
	if r := tab.Add(Entry{ID: waiting, Addr: "192.0.2.1:1"}, t0); r.Status != Pending {
		t.Fatalf("got %v", r.Status)
	}
	for i := range 2 { // two more in the cache from 198.51.100.0/24
		tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: fmt.Sprintf("198.51.100.%d:1", i+1)}, t0)
	}
	r := tab.Add(Entry{ID: waiting, Addr: "198.51.100.9:1"}, t0) // re-learned in the cache's full group
	if inCache := indexOf(tab.buckets[255].replacements, waiting) >= 0; r.Status != RejectedIP || !inCache {
		t.Fatalf("re-learned in a full group: %v, still in the replacement cache: %v; want RejectedIP, and its place kept", r.Status, inCache)
	}
}

// A node waiting in a replacement cache follows the entries' failure rule: dropped at its MaxFailures-th failed
// check in a row, its count reset by an answer (MarkAlive) and kept when its record is heard of again (Add), as
// hearing of an entry keeps its count. Until stop 58 it was dropped at its first failure.
func TestAWaitingNodeIsDroppedAfterMaxFailuresInARow(t *testing.T) {
	rng := newRand(258)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K, cfg.MaxFailures = false, 2, 3
	tab, _ := NewTable(self, cfg)
	fillBucket(t, tab, []session.NodeID{idInBucket(rng, self, 256), idInBucket(rng, self, 256)})
	x := idInBucket(rng, self, 256)
	waiting := func() bool { return tab.ReplacementLens()[255] == 1 }
	if r := tab.Add(Entry{ID: x, Addr: "70.0.0.1:1"}, t0); r.Status != Pending {
		t.Fatalf("the newcomer: %v, want Pending", r.Status)
	}
	failTwice := func() bool {
		return tab.MarkFailed(x, t0, t0) || tab.MarkFailed(x, t0.Add(time.Minute), t0.Add(time.Minute))
	}
	if failTwice() || !waiting() {
		t.Fatal("a waiting node dropped before MaxFailures failures")
	}
	if tab.MarkAlive(x, t0) {
		t.Fatal("MarkAlive reported a waiting node in the table")
	}
	if failTwice() || !waiting() {
		t.Fatal("an answer did not reset a waiting node's failures")
	}
	tab.Add(Entry{ID: x, Addr: "70.0.0.1:1"}, t0) // heard of again: no sign of life
	if !tab.MarkFailed(x, t0.Add(2*time.Minute), t0.Add(2*time.Minute)) || waiting() {
		t.Fatal("a waiting node not dropped at its MaxFailures-th failure in a row (hearing of it reset its count?)")
	}
}

// waitingRig returns a table (K = 2, MaxFailures = 1, KeepNearest off) whose bucket at distance 256 holds a and b,
// added at t0 and answered at t0+3s, with x and then y waiting in its replacement cache, heard of at t0+1s and
// t0+2s.
func waitingRig(t *testing.T, seed uint64) (tab *Table, a, b, x, y session.NodeID) {
	t.Helper()
	rng := newRand(seed)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K, cfg.MaxFailures = false, 2, 1
	cfg.LookupFailureSpacing = 0 // the lookup rule's tests count failures in a row at any pace (but the spacing's)
	tab, _ = NewTable(self, cfg)
	a, b, x, y = idInBucket(rng, self, 256), idInBucket(rng, self, 256), idInBucket(rng, self, 256), idInBucket(rng, self, 256)
	fillBucket(t, tab, []session.NodeID{a, b})
	for i, id := range []session.NodeID{x, y} {
		if r := tab.Add(Entry{ID: id, Addr: fmt.Sprintf("71.0.%d.1:1", i)}, t0.Add(time.Duration(i+1)*time.Second)); r.Status != Pending {
			t.Fatalf("waiting node %d: %v, want Pending", i, r.Status)
		}
	}
	tab.MarkAlive(a, t0.Add(3*time.Second))
	tab.MarkAlive(b, t0.Add(3*time.Second))
	return tab, a, b, x, y
}

// Hearing of a node waiting in a replacement cache again (a peer naming it in answer after answer) is no sign of
// life, as for an entry (Updated): it keeps its place in the cache, behind a node that arrived after it, and its
// LastSeen, by which it is placed when promoted, its address refreshed. Until stop 59 it moved to the cache's most
// recent place with LastSeen = now: first in line for promotion, and placed as the freshest entry.
func TestHearingOfAWaitingNodeAgainKeepsItsPlaceAndLastSeen(t *testing.T) {
	tab, a, b, x, y := waitingRig(t, 259)
	later := t0.Add(time.Hour)
	if r := tab.Add(Entry{ID: x, Addr: "72.0.0.1:1"}, later); r.Status != Pending {
		t.Fatalf("heard of again: %v, want Pending", r.Status)
	}
	if !tab.MarkFailed(a, later, later) {
		t.Fatal("a failed check did not evict the entry (MaxFailures = 1)")
	}
	if _, ok := tab.Get(y); !ok {
		t.Fatal("the node heard of again was promoted before the one that arrived after it: hearing of it moved it")
	}
	tab.MarkFailed(b, later, later)
	e, ok := tab.Get(x)
	if !ok {
		t.Fatal("the node heard of again was not promoted in its turn")
	}
	if !e.LastSeen.Equal(t0.Add(time.Second)) || e.Addr != "72.0.0.1:1" {
		t.Fatalf("promoted with LastSeen %v, address %s; want the LastSeen it arrived with, %v, and the new address",
			e.LastSeen, e.Addr, t0.Add(time.Second))
	}
	if s, _ := tab.Stalest(nil); s.ID != x || tab.Entries()[0].ID != x {
		t.Fatalf("the stalest entry is %s, the bucket's first %s; want the promoted node, never heard from since it arrived",
			s.ID.Short(), tab.Entries()[0].ID.Short())
	}
}

// A node waiting in a replacement cache that is heard of again when its bucket has room enters the table with the
// LastSeen it had, placed by it: hearing of it does not make it look fresh. Until stop 59 it entered as the
// bucket's most recently seen, checked last.
func TestAWaitingNodeHeardOfAgainEntersWithItsLastSeen(t *testing.T) {
	tab, a, b, x, _ := waitingRig(t, 260)
	tab.Remove(a) // room, without a promotion
	if r := tab.Add(Entry{ID: x, Addr: "71.0.0.1:1"}, t0.Add(time.Hour)); r.Status != Added {
		t.Fatalf("heard of again with room in its bucket: %v, want Added", r.Status)
	}
	e, _ := tab.Get(x)
	if first := tab.Entries()[0].ID; !e.LastSeen.Equal(t0.Add(time.Second)) || first != x {
		t.Fatalf("entered with LastSeen %v, the bucket's first %s (b is %s); want its LastSeen %v and the first place",
			e.LastSeen, first.Short(), b.Short(), t0.Add(time.Second))
	}
}
