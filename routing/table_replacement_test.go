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
	failTwice := func() bool { return tab.MarkFailed(x, t0) || tab.MarkFailed(x, t0.Add(time.Second)) }
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
	if !tab.MarkFailed(x, t0) || waiting() {
		t.Fatal("a waiting node not dropped at its MaxFailures-th failure in a row (hearing of it reset its count?)")
	}
}
