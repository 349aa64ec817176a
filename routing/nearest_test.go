package routing

import (
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// TestClosestMatchesOracle compares Closest with a brute-force sort of every entry on random tables.
func TestClosestMatchesOracle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		k       int
		nodes   int
		targets int
	}{
		{"k20", 20, 5000, 2000},
		{"k1000", 1000, 3000, 120}, // most nodes fit: crowded buckets
		{"k3", 3, 2000, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := newRand(uint64(tc.k))
			cfg := noLimits()
			cfg.K = tc.k
			tab, err := NewTable(randID(rng), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.nodes {
				tab.Add(Entry{ID: randID(rng), Addr: randAddr(rng)}, t0.Add(time.Duration(i)))
			}
			all := tab.Entries()
			if len(all) != tab.Len() {
				t.Fatalf("Entries has %d, Len = %d", len(all), tab.Len())
			}
			lens := tab.BucketLens()
			for d := 1; d <= KeyBits; d++ {
				if lens[d-1] > tc.k {
					t.Fatalf("bucket %d holds %d > k", d, lens[d-1])
				}
			}
			prev := 0
			for _, e := range all {
				d := LogDistance(tab.SelfKey(), e.Key)
				if e.Key != KeyOf(e.ID) || d < prev {
					t.Fatalf("Entries out of order or bad key at %s", e.ID.Short())
				}
				prev = d
			}
			t.Logf("%d nodes added, %d in table", tc.nodes, len(all))
			for i := range tc.targets {
				var target Key
				switch i % 4 {
				case 0:
					target = randKey(rng)
				case 1:
					target = tab.RandomKeyAtDistance(rng, 1+rng.IntN(KeyBits))
				case 2:
					target = all[rng.IntN(len(all))].Key
				case 3:
					target = tab.RandomKeyAtDistance(rng, rng.IntN(12)) // near self, incl. self
				}
				sorted := oracleClosest(all, target, len(all))
				for _, n := range []int{1, 5, 20, 100, len(all) + 5} {
					got, want := tab.Closest(target, n), sorted[:min(n, len(sorted))]
					if !slices.Equal(ids(got), ids(want)) {
						t.Fatalf("Closest(%s, %d) differs from the oracle", target, n)
					}
				}
			}
			if tab.Closest(randKey(rng), 0) != nil {
				t.Fatal("Closest(n = 0) is not empty")
			}
		})
	}
}

// TestNearestUnansweredPicksANeighbourThatHasNotAnswered: among the node's k closest entries, the nearest one that
// has not answered, skipping the excluded; none when every near entry answered, however many far ones did not.
func TestNearestUnansweredPicksANeighbourThatHasNotAnswered(t *testing.T) {
	rng := newRand(11)
	self := randID(rng)
	tab, err := NewTable(self, noLimits())
	if err != nil {
		t.Fatal(err)
	}
	for range 60 {
		tab.Add(Entry{ID: randID(rng), Addr: randAddr(rng)}, t0)
	}
	const k = 5
	near := tab.Closest(KeyOf(self), k)
	if len(near) != k {
		t.Fatalf("%d closest entries, want %d", len(near), k)
	}
	if e, ok := tab.NearestUnanswered(k, nil); !ok || e.ID != near[0].ID {
		t.Fatalf("NearestUnanswered = %s (%v), want the nearest entry %s", e.ID.Short(), ok, near[0].ID.Short())
	}
	tab.MarkAlive(near[0].ID, t0.Add(time.Second))
	skip := func(id session.NodeID) bool { return id == near[1].ID }
	if e, ok := tab.NearestUnanswered(k, skip); !ok || e.ID != near[2].ID {
		t.Fatalf("NearestUnanswered with the nearest answered and the next skipped = %s (%v), want %s", e.ID.Short(), ok, near[2].ID.Short())
	}
	for _, e := range near {
		tab.MarkAlive(e.ID, t0.Add(time.Second))
	}
	if e, ok := tab.NearestUnanswered(k, nil); ok {
		t.Fatalf("NearestUnanswered = %s with every one of the %d closest answered", e.ID.Short(), k)
	}
	if _, ok := tab.StalestOf(false, nil); !ok {
		t.Fatal("no unanswered entry left beyond the closest: the test proves nothing")
	}
}

// TestNeighboursAreTheNearestEitherWay: Table.Neighbours agrees with a sort of the whole table, for each entry: it is
// among the node's k nearest, or the node is among its k nearest of the entries (its own left out). Some entries are
// neighbours by the second half alone (the node is near them, they are not near it), and none outside the table is.
func TestNeighboursAreTheNearestEitherWay(t *testing.T) {
	rng := newRand(12)
	self := randID(rng)
	tab, err := NewTable(self, noLimits())
	if err != nil {
		t.Fatal(err)
	}
	for range 400 {
		tab.Add(Entry{ID: randID(rng), Addr: randAddr(rng)}, t0)
	}
	all := tab.Entries()
	selfKey := KeyOf(self)
	theirsOnly := map[int]int{} // by k
	for _, k := range []int{1, 5, 20} {
		mine := ids(oracleClosest(all, selfKey, k))
		for _, e := range all {
			closer := 0 // the entries other than e nearer to e than the node
			for _, o := range all {
				if o.ID != e.ID && DistCmp(e.Key, o.Key, selfKey) < 0 {
					closer++
				}
			}
			want := slices.Contains(mine, e.ID) || closer < k
			if !slices.Contains(mine, e.ID) && closer < k {
				theirsOnly[k]++
			}
			if got := tab.Neighbours(e.ID, k); got != want {
				t.Fatalf("k = %d: Neighbours(%s) = %v, want %v (%d entries nearer to it than the node)", k, e.ID.Short(), got, want, closer)
			}
		}
	}
	if theirsOnly[20] == 0 {
		t.Fatalf("entries that are neighbours by the node's nearness to them alone, by k: %v: the test proves little", theirsOnly)
	}
	if tab.Neighbours(randID(rng), 20) {
		t.Fatal("a node not in the table is a neighbour")
	}
	if tab.Neighbours(all[len(all)-1].ID, 0) {
		t.Fatal("k = 0 makes a neighbour")
	}
}
