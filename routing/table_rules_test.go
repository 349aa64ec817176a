package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// nearestFirst returns n random ids at log distance d from self, the nearest to self's key first.
func nearestFirst(rng *rand.Rand, self session.NodeID, d, n int) []session.NodeID {
	out := make([]session.NodeID, n)
	for i := range out {
		out[i] = idInBucket(rng, self, d)
	}
	sk := KeyOf(self)
	slices.SortFunc(out, func(a, b session.NodeID) int { return DistCmp(sk, KeyOf(a), KeyOf(b)) })
	return out
}

// An entry that moves to another IP group frees its place in the old group's table-wide count: another node of
// that group may then join.
func TestAnEntryMovingToAnotherGroupFreesItsOldGroupsPlace(t *testing.T) {
	rng := newRand(201)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.BucketIPLimit, cfg.TableIPLimit = 0, 2
	tab, _ := NewTable(self, cfg)
	a, b := randID(rng), randID(rng)
	tab.Add(Entry{ID: a, Addr: "60.0.0.1:1"}, t0)
	tab.Add(Entry{ID: b, Addr: "60.0.0.2:1"}, t0)
	if r := tab.Add(Entry{ID: b, Addr: "61.0.0.2:1"}, t0); r.Status != Updated {
		t.Fatalf("move to another /24: %v, want Updated", r.Status)
	}
	if r := tab.Add(Entry{ID: randID(rng), Addr: "60.0.0.3:1"}, t0); r.Status != Added {
		t.Fatalf("a node of the /24 one entry left: %v, want Added", r.Status)
	}
}

// Add with no Record keeps the record the table holds for the node (the address is updated).
func TestAnAddWithoutARecordKeepsTheOneHeld(t *testing.T) {
	rng := newRand(202)
	tab, _ := NewTable(randID(rng), DefaultTableConfig())
	id := randID(rng)
	rec := &messages.NodeRecord{Id: id.Bytes(), Seq: 7}
	tab.Add(Entry{ID: id, Addr: "62.0.0.1:1", Record: rec}, t0)
	tab.Add(Entry{ID: id, Addr: "62.0.0.2:1"}, t0)
	if e, _ := tab.Get(id); e.Record != rec || e.Addr != "62.0.0.2:1" {
		t.Fatalf("after an add without a record: record %v, addr %s; want the one held and the new address", e.Record, e.Addr)
	}
	if seq, ok := tab.RecordSeq(id); !ok || seq != 7 {
		t.Fatalf("RecordSeq = %d, %v; want 7", seq, ok)
	}
}

// keepNearestBucket returns a KeepNearest table with K = 2 holding the two farthest of three ids at distance 256,
// and the three ids, nearest first.
func keepNearestBucket(t *testing.T, seed uint64) (*Table, []session.NodeID) {
	t.Helper()
	rng := newRand(seed)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.K = 2
	tab, _ := NewTable(self, cfg)
	ids := nearestFirst(rng, self, 256, 3)
	for i, id := range ids[1:] {
		if r := tab.Add(Entry{ID: id, Addr: fmt.Sprintf("63.0.%d.1:1", i)}, t0); r.Status != Added {
			t.Fatalf("add %d: %v", i, r.Status)
		}
	}
	return tab, ids
}

// A newcomer among the K nearest takes the place of its bucket's farthest entry, which waits in the replacement
// cache (TableConfig.KeepNearest).
func TestADisplacedEntryWaitsInTheReplacementCache(t *testing.T) {
	tab, ids := keepNearestBucket(t, 203)
	if r := tab.Add(Entry{ID: ids[0], Addr: "64.0.0.1:1"}, t0); r.Status != Added {
		t.Fatalf("the nearest node: %v, want Added", r.Status)
	}
	if _, ok := tab.Get(ids[2]); ok {
		t.Fatal("the farthest entry was not displaced")
	}
	if indexOf(tab.buckets[255].replacements, ids[2]) < 0 {
		t.Fatal("the displaced entry is not in the replacement cache")
	}
}

// A displaced entry that had answered, back in the table, still counts as having answered: it waited in the
// replacement cache, it did not leave the table's knowledge.
func TestAnEntryBackFromTheReplacementCacheKeepsItsAnswer(t *testing.T) {
	tab, ids := keepNearestBucket(t, 204)
	tab.MarkAlive(ids[2], t0)
	tab.Add(Entry{ID: ids[0], Addr: "64.0.0.1:1"}, t0) // displaces ids[2]
	tab.Remove(ids[1])
	if r := tab.Add(Entry{ID: ids[2], Addr: "63.0.1.1:1"}, t0); r.Status != Added {
		t.Fatalf("re-add with room: %v, want Added", r.Status)
	}
	if e, _ := tab.Get(ids[2]); !e.Answered() || !e.AnsweredAt.Equal(t0) {
		t.Fatalf("AnsweredAt %v after the way through the replacement cache, want %v", e.AnsweredAt, t0)
	}
}

// A node waiting in a replacement cache whose group holds BucketIPLimit places there, its own among them, is
// refreshed when learned again: its own place does not count against it.
func TestAWaitingNodeLearnedAgainInAFullGroupIsRefreshed(t *testing.T) {
	rng := newRand(205)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K = false, 2
	tab, _ := NewTable(self, cfg)
	fillBucket(t, tab, []session.NodeID{idInBucket(rng, self, 256), idInBucket(rng, self, 256)})
	x := idInBucket(rng, self, 256)
	tab.Add(Entry{ID: x, Addr: "65.0.0.1:1"}, t0)
	tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "65.0.0.2:1"}, t0)
	if r := tab.Add(Entry{ID: x, Addr: "65.0.0.3:1"}, t0); r.Status != Pending {
		t.Fatalf("a waiting node learned again in its full group: %v, want Pending", r.Status)
	}
	if i := indexOf(tab.buckets[255].replacements, x); i < 0 || tab.buckets[255].replacements[i].e.Addr != "65.0.0.3:1" {
		t.Fatal("the waiting node's place was not refreshed with its new address")
	}
}

// A newcomer to a full bucket displaces an entry only when it is among the K nodes nearest the own key of the
// whole table: nodes in nearer buckets, and the bucket's entries nearer than it, count against it.
func TestANewcomerOutsideTheKNearestDisplacesNobody(t *testing.T) {
	t.Run("K nearer in nearer buckets", func(t *testing.T) {
		tab, ids := keepNearestBucket(t, 206)
		rng := newRand(207)
		for i := range 2 { // the table's K nearest, one bucket nearer
			tab.Add(Entry{ID: idInBucket(rng, tab.Self(), 255), Addr: fmt.Sprintf("66.0.%d.1:1", i)}, t0)
		}
		if r := tab.Add(Entry{ID: ids[0], Addr: "64.0.0.1:1"}, t0); r.Status != Pending {
			t.Fatalf("a newcomer behind K nearer nodes: %v, want Pending", r.Status)
		}
	})
	t.Run("K nearer with the bucket's own", func(t *testing.T) {
		rng := newRand(208)
		self := randID(rng)
		cfg := DefaultTableConfig()
		cfg.K = 2
		tab, _ := NewTable(self, cfg)
		ids := nearestFirst(rng, self, 256, 3)
		tab.Add(Entry{ID: idInBucket(rng, self, 255), Addr: "67.0.0.1:1"}, t0) // one nearer, in a nearer bucket
		tab.Add(Entry{ID: ids[0], Addr: "67.0.1.1:1"}, t0)
		tab.Add(Entry{ID: ids[2], Addr: "67.0.2.1:1"}, t0)
		// ids[1] is third nearest: the bucket-255 entry and ids[0] are nearer.
		if r := tab.Add(Entry{ID: ids[1], Addr: "67.0.3.1:1"}, t0); r.Status != Pending {
			t.Fatalf("the third nearest node with K = 2: %v, want Pending", r.Status)
		}
	})
}

// A promoted replacement takes its place in its bucket by LastSeen: entries seen after it stay after it.
func TestAPromotedReplacementIsPlacedByLastSeen(t *testing.T) {
	rng := newRand(209)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K = false, 2
	tab, _ := NewTable(self, cfg)
	a, b, x := idInBucket(rng, self, 256), idInBucket(rng, self, 256), idInBucket(rng, self, 256)
	fillBucket(t, tab, []session.NodeID{a, b})
	tab.Add(Entry{ID: x, Addr: "68.0.0.1:1"}, t0.Add(time.Minute)) // waits, seen at t0+1m
	tab.MarkAlive(b, t0.Add(2*time.Minute))
	tab.MarkFailed(a, t0.Add(3*time.Minute), t0.Add(3*time.Minute))
	if !tab.MarkFailed(a, t0.Add(4*time.Minute), t0.Add(4*time.Minute)) {
		t.Fatal("a not evicted")
	}
	if got := ids(tab.Entries()); !slices.Equal(got, []session.NodeID{x, b}) {
		t.Fatalf("bucket order after the promotion: %v, want the replacement (seen at 1m) before b (seen at 2m)", got)
	}
}

// Remove takes a node out of its replacement cache too: it is not promoted later.
func TestRemoveDropsAWaitingNode(t *testing.T) {
	rng := newRand(210)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K = false, 2
	tab, _ := NewTable(self, cfg)
	a := idInBucket(rng, self, 256)
	fillBucket(t, tab, []session.NodeID{a, idInBucket(rng, self, 256)})
	x := idInBucket(rng, self, 256)
	tab.Add(Entry{ID: x, Addr: "69.0.0.1:1"}, t0)
	if tab.Remove(x) {
		t.Fatal("Remove of a waiting node reported it in the table")
	}
	if n := tab.ReplacementLens()[255]; n != 0 {
		t.Fatalf("replacement cache holds %d after Remove, want 0", n)
	}
	tab.MarkFailed(a, t0, t0)
	tab.MarkFailed(a, t0.Add(time.Minute), t0.Add(time.Minute))
	if _, ok := tab.Get(x); ok {
		t.Fatal("a removed node was promoted")
	}
}

// A bucket refreshed olderThan ago is due again: "within olderThan" excludes its end.
func TestABucketIsDueOnceOlderThanHasPassed(t *testing.T) {
	rng := newRand(211)
	tab, _ := NewTable(randID(rng), noLimits())
	tab.Add(Entry{ID: idInBucket(rng, tab.Self(), 256), Addr: randAddr(rng)}, t0)
	if got := tab.RefreshTargets(rng, t0, time.Hour); len(got) != 1 {
		t.Fatalf("%d targets at first, want bucket 256's", len(got))
	}
	if got := tab.RefreshTargets(rng, t0.Add(time.Hour-1), time.Hour); len(got) != 0 {
		t.Fatalf("%d targets before the hour is over, want none", len(got))
	}
	if got := tab.RefreshTargets(rng, t0.Add(time.Hour), time.Hour); len(got) != 1 {
		t.Fatalf("%d targets an hour on, want bucket 256's again", len(got))
	}
}

// IPv6 addresses are grouped by /64: two /64s of one /48 are two groups.
func TestIPv6AddressesAreGroupedBySlash64(t *testing.T) {
	rng := newRand(212)
	cfg := DefaultTableConfig()
	cfg.BucketIPLimit, cfg.TableIPLimit = 0, 1
	tab, _ := NewTable(randID(rng), cfg)
	for i, addr := range []string{"[2001:db8:1:1::1]:1", "[2001:db8:1:2::1]:1"} {
		if r := tab.Add(Entry{ID: randID(rng), Addr: addr}, t0); r.Status != Added {
			t.Fatalf("add %d (%s): %v, want Added", i, addr, r.Status)
		}
	}
	if r := tab.Add(Entry{ID: randID(rng), Addr: "[2001:db8:1:2::2]:1"}, t0); r.Status != RejectedIP {
		t.Fatalf("a second node of one /64 with TableIPLimit 1: %v, want RejectedIP", r.Status)
	}
}

// The table's per-group counts forget a group whose last entry left: the map does not grow with every group ever
// seen.
func TestGroupCountsForgetAGroupOnceEmpty(t *testing.T) {
	rng := newRand(213)
	tab, _ := NewTable(randID(rng), DefaultTableConfig())
	for range 50 {
		id := randID(rng)
		tab.Add(Entry{ID: id, Addr: randAddr(rng)}, t0)
		tab.Remove(id)
	}
	if n := len(tab.groups); n != 0 {
		t.Fatalf("%d groups counted in an empty table, want 0", n)
	}
}
