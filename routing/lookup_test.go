package routing

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// simNet is an in-memory network: each node has a table built from the full node set and answers FindNode with
// its Closest(target, k).
type simNet struct {
	nodes  []Entry
	tables []*Table
	index  map[session.NodeID]int
	dead   []bool
}

// newSimNet builds a network of n random nodes with k-buckets.
func newSimNet(t testing.TB, seed uint64, n, k int) *simNet {
	rng := newRand(seed)
	s := &simNet{index: make(map[session.NodeID]int, n), dead: make([]bool, n)}
	for i := range n {
		id := randID(rng)
		s.nodes = append(s.nodes, Entry{ID: id, Key: KeyOf(id), Addr: randAddr(rng)})
		s.index[id] = i
	}
	cfg := noLimits()
	cfg.K = k
	for i := range n {
		tab, err := NewTable(s.nodes[i].ID, cfg)
		if err != nil {
			t.Fatal(err)
		}
		off := rng.IntN(n) // vary which nodes win the full buckets
		for j := range n {
			tab.Add(s.nodes[(off+j)%n], t0)
		}
		s.tables = append(s.tables, tab)
	}
	return s
}

// lookup runs a lookup from node from for target, answering requests in random order, like replies of varying
// latency; dead nodes fail.
func (s *simNet) lookup(t testing.TB, rng *rand.Rand, from int, target Key, alpha, k int) *Lookup {
	l := NewLookup(target, s.nodes[from].ID, s.tables[from].Closest(target, k), alpha, 0, k)
	var pending []Entry
	for {
		next := l.Next()
		if len(next)+len(pending) > alpha {
			t.Fatalf("%d requests in flight, alpha = %d", len(next)+len(pending), alpha)
		}
		pending = append(pending, next...)
		if len(pending) == 0 {
			break
		}
		i := rng.IntN(len(pending))
		e := pending[i]
		pending = slices.Delete(pending, i, i+1)
		if j := s.index[e.ID]; s.dead[j] {
			l.Failed(e.ID)
		} else {
			l.Succeeded(e.ID, s.tables[j].Closest(target, k))
		}
	}
	if !l.Done() {
		t.Fatal("nothing left to ask but the lookup is not done")
	}
	return l
}

// oracle returns the k live nodes other than from closest to target.
func (s *simNet) oracle(from int, target Key, k int) []session.NodeID {
	var live []Entry
	for i, e := range s.nodes {
		if i != from && !s.dead[i] {
			live = append(live, e)
		}
	}
	return ids(oracleClosest(live, target, k))
}

// TestLookupFindsClosest runs lookups on a 1000-node network and compares their results with the true k closest.
func TestLookupFindsClosest(t *testing.T) {
	const n, alpha, k, lookups = 1000, 3, 20, 300
	s := newSimNet(t, 30, n, k)
	rng := newRand(31)
	stats := func(name string, rounds, queried []int) {
		sum, qsum := 0, 0
		for i := range rounds {
			sum += rounds[i]
			qsum += queried[i]
		}
		hist := make(map[int]int)
		for _, r := range rounds {
			hist[r]++
		}
		t.Logf("%s: %d lookups, rounds mean %.2f max %d (histogram %v), queries mean %.1f max %d",
			name, len(rounds), float64(sum)/float64(len(rounds)), slices.Max(rounds), hist,
			float64(qsum)/float64(len(queried)), slices.Max(queried))
	}

	t.Run("all live", func(t *testing.T) {
		var rounds, queried []int
		for i := range lookups {
			from := rng.IntN(n)
			target := randKey(rng)
			if i%2 == 1 {
				target = s.nodes[rng.IntN(n)].Key
			}
			l := s.lookup(t, rng, from, target, alpha, k)
			if got, want := ids(l.Result()), s.oracle(from, target, k); !slices.Equal(got, want) {
				t.Fatalf("lookup %d from %s for %s: result is not the true %d closest", i, s.nodes[from].ID.Short(), target, k)
			}
			rounds, queried = append(rounds, l.Rounds()), append(queried, l.Queried())
		}
		stats("1000 nodes, all live", rounds, queried)
	})

	t.Run("20% dead", func(t *testing.T) {
		for _, i := range rng.Perm(n)[:n/5] {
			s.dead[i] = true
		}
		defer clear(s.dead)
		var rounds, queried []int
		exact, recalled := 0, 0
		for i := range lookups {
			from, to := rng.IntN(n), rng.IntN(n)
			for s.dead[from] || s.dead[to] || from == to {
				from, to = rng.IntN(n), rng.IntN(n)
			}
			target := s.nodes[to].Key
			l := s.lookup(t, rng, from, target, alpha, k)
			res := l.Result()
			if !l.Found(s.nodes[to].ID) || len(res) == 0 || res[0].ID != s.nodes[to].ID {
				t.Fatalf("lookup %d from %s did not find live node %s", i, s.nodes[from].ID.Short(), s.nodes[to].ID.Short())
			}
			want := s.oracle(from, target, k)
			if slices.Equal(ids(res), want) {
				exact++
			}
			for _, e := range res {
				if slices.Contains(want, e.ID) {
					recalled++
				}
			}
			rounds, queried = append(rounds, l.Rounds()), append(queried, l.Queried())
		}
		stats("1000 nodes, 20% dead", rounds, queried)
		// Tables still list the dead nodes, so responders' answers hold only ~16 live nodes of their 20: the live
		// nodes ranked 21-25 overall are rarely returned by anyone, until revalidation evicts the dead.
		t.Logf("20%% dead: %d/%d lookups returned exactly the %d closest live nodes; %.1f%% of those found overall",
			exact, lookups, k, 100*float64(recalled)/float64(lookups*k))
		if recalled < lookups*k*9/10 {
			t.Fatalf("lookups found only %d of the %d closest live nodes", recalled, lookups*k)
		}
	})
}

func TestLookupBasics(t *testing.T) {
	rng := newRand(40)
	self := randID(rng)
	target := randKey(rng)
	seeds := randomEntries(41, 10)
	withSelf := append([]Entry{{ID: self, Addr: "192.0.2.1:1"}}, seeds...)
	withSelf = append(withSelf, seeds[0]) // duplicate
	l := NewLookup(target, self, withSelf, 0, 0, 0)
	if l.alpha != DefaultAlpha || l.k != DefaultK || len(l.cands) != 10 || l.Found(self) {
		t.Fatalf("alpha %d k %d, %d candidates, self found %v", l.alpha, l.k, len(l.cands), l.Found(self))
	}
	if l.Target() != target {
		t.Fatal("Target")
	}
	first := l.Next()
	if len(first) != DefaultAlpha || l.InFlight() != DefaultAlpha || len(l.Next()) != 0 {
		t.Fatalf("Next gave %d, then more with alpha in flight", len(first))
	}
	want := oracleClosest(seeds, target, 3)
	if !slices.Equal(ids(first), ids(want)) {
		t.Fatal("Next did not return the closest candidates")
	}
	l.Succeeded(randID(rng), randomEntries(42, 5)) // unsolicited: ignored
	if l.InFlight() != 3 || len(l.cands) != 10 {
		t.Fatal("unsolicited answer was taken")
	}
	l.Succeeded(first[0].ID, []Entry{{ID: self}, first[1], first[0]}) // only known nodes and self
	l.Succeeded(first[0].ID, randomEntries(43, 5))                    // second answer from the same node: ignored
	l.Failed(first[1].ID)
	l.Failed(first[1].ID)
	if l.InFlight() != 1 || len(l.cands) != 9 || l.Queried() != 3 {
		t.Fatalf("in flight %d, %d candidates, queried %d", l.InFlight(), len(l.cands), l.Queried())
	}
	if l.Done() {
		t.Fatal("done with requests in flight")
	}
	for !l.Done() {
		for _, e := range l.Next() {
			l.Failed(e.ID)
		}
		if l.InFlight() == 1 {
			l.Succeeded(first[2].ID, nil)
		}
	}
	if got := ids(l.Result()); !slices.Equal(got, []session.NodeID{first[0].ID, first[2].ID}) || l.Queried() != 10 || l.Rounds() != 1 {
		t.Fatalf("result %d entries, queried %d, rounds %d", len(got), l.Queried(), l.Rounds())
	}
	if !NewLookup(target, self, nil, 3, 0, 20).Done() {
		t.Fatal("a lookup with no seeds is not done")
	}
}

// TestLookupBoundsCandidates feeds a lookup a hostile answer of 10,000 entries.
func TestLookupBoundsCandidates(t *testing.T) {
	const k = 20
	rng := newRand(50)
	target := randKey(rng)
	hostile := Entry{ID: randID(rng), Addr: "192.0.2.66:1"}
	l := NewLookup(target, randID(rng), []Entry{hostile}, 3, 0, k)
	l.Next()
	flood := randomEntries(51, 10000)
	l.Succeeded(hostile.ID, flood)
	if len(l.cands) > CandidateFactor*k || len(l.known) > CandidateFactor*k+1 {
		t.Fatalf("%d candidates, %d known; bound %d", len(l.cands), len(l.known), CandidateFactor*k)
	}
	// What is kept is the closest of everything heard.
	all := append(flood, hostile)
	var kept []session.NodeID
	for _, c := range l.cands {
		kept = append(kept, c.e.ID)
	}
	if !slices.Equal(kept, ids(oracleClosest(all, target, CandidateFactor*k))) {
		t.Fatal("the candidates kept are not the closest")
	}
	// Rounds of floods from every node asked keep within the bound.
	for i := range 10 {
		for _, e := range l.Next() {
			l.Succeeded(e.ID, randomEntries(uint64(100+i), 10000))
		}
		if len(l.cands) > CandidateFactor*k || len(l.known) > CandidateFactor*k+l.Queried() {
			t.Fatalf("%d candidates, %d known after %d queries", len(l.cands), len(l.known), l.Queried())
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s := newSimNet(b, 60, 1000, 20)
	rng := newRand(61)
	b.ReportAllocs()
	queries := 0
	for b.Loop() {
		l := s.lookup(b, rng, rng.IntN(1000), randKey(rng), 3, 20)
		queries += l.Queried()
	}
	b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
}

// TestLookupTakesTheNewestRecordOfANode: a node's old record heard first (replayed, or from a peer that has not
// heard it moved) gives way to its newer record, whatever the order of the answers: the lookup asks and reports
// the node where it is now.
func TestLookupTakesTheNewestRecordOfANode(t *testing.T) {
	rng := newRand(50)
	self, target := randID(rng), randKey(rng)
	seeds := randomEntries(51, 4)
	moved := randomEntries(52, 1)[0]
	older, newer := moved, moved
	older.Addr, older.Record = "192.0.2.1:1", &messages.NodeRecord{Seq: 1}
	newer.Addr, newer.Record = "192.0.2.99:1", &messages.NodeRecord{Seq: 5}
	l := NewLookup(target, self, seeds, 4, 0, 0)
	asked := l.Next()
	l.Succeeded(asked[0].ID, []Entry{older})
	l.Succeeded(asked[1].ID, []Entry{newer})
	l.Succeeded(asked[2].ID, []Entry{older}) // the old one again: kept out
	if e, ok := l.Get(moved.ID); !ok || e.Addr != newer.Addr || e.Record.GetSeq() != 5 {
		t.Fatalf("the lookup holds %+v, want the address of seq 5", e)
	}
}

// A lookup with beta below k ends once the beta closest candidates still standing have answered (Config.Beta,
// DefaultBeta 3: it does not wait on farther nodes once the closest answered), though requests to farther ones
// are still in flight: a failed one no longer counts among the closest, the next closest takes its place. Its
// Result is then the k closest candidates standing, answered or not.
func TestLookupEndsOnceItsBetaClosestAnswered(t *testing.T) {
	rng := newRand(70)
	self, target := randID(rng), randKey(rng)
	seeds := randomEntries(71, 6)
	c := ids(oracleClosest(seeds, target, 6)) // c[0] closest
	l := NewLookup(target, self, seeds, 4, 2, 5)
	next := func() []session.NodeID { return ids(l.Next()) }
	if got := next(); !slices.Equal(got, c[:4]) {
		t.Fatalf("asked %v first, want the 4 closest", got)
	}
	steps := []struct {
		what string
		do   func()
		ask  []session.NodeID // asked by the Next that follows
		done bool
	}{
		{"the 4th closest answered", func() { l.Succeeded(c[3], nil) }, c[4:5], false},
		{"the closest answered, the 2nd in flight", func() { l.Succeeded(c[0], nil) }, nil, false},
		// c[5] moves up among the k closest standing.
		{"the 2nd closest failed: the 3rd, in flight, is now among the 2 closest", func() { l.Failed(c[1]) }, c[5:6], false},
		{"the 3rd closest answered: the 2 closest standing did", func() { l.Succeeded(c[2], nil) }, nil, true},
	}
	for _, s := range steps {
		s.do()
		if done := l.Done(); done != s.done {
			t.Fatalf("%s: Done %v, want %v", s.what, done, s.done)
		}
		if s.done {
			break
		}
		if got := next(); !slices.Equal(got, s.ask) {
			t.Fatalf("%s: then asked %v, want %v", s.what, got, s.ask)
		}
	}
	if l.InFlight() != 2 {
		t.Errorf("%d requests in flight at the end, want the 2 to the farthest", l.InFlight())
	}
	if got, want := ids(l.Result()), []session.NodeID{c[0], c[2], c[3], c[4], c[5]}; !slices.Equal(got, want) {
		t.Errorf("result %v, want the 5 closest standing %v", got, want)
	}
}
