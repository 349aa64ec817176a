package routing

import (
	"testing"
)

// A node asked stays known when closer answers push it out of the candidates: Found reports it, and it is never
// asked again (the lookup "never asks a node twice"), though an answer names it once there is room again.
func TestAnAskedNodePushedOutOfTheCandidatesIsNotAskedAgain(t *testing.T) {
	rng := newRand(220)
	self, target := randID(rng), randKey(rng)
	all := oracleClosest(randomEntries(221, 4), target, 4) // all[0] closest
	far := all[3]
	l := NewLookup(target, self, []Entry{far}, 1, 0, 1) // k = 1: at most 3 candidates
	l.Next()
	l.Succeeded(far.ID, all[:3]) // three closer: far leaves the candidates
	if !l.Found(far.ID) {
		t.Fatal("the node asked is no longer known once pushed out of the candidates")
	}
	for _, c := range all[:2] { // the two closest fail: room for far again
		if got := l.Next(); len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("asked %v, want %v", ids(got), c.ID)
		}
		l.Failed(c.ID)
	}
	l.Next() // all[2]
	l.Succeeded(all[2].ID, []Entry{far})
	if got := l.Next(); len(got) != 0 {
		t.Fatalf("asked %v again", ids(got))
	}
	if l.Queried() != 4 {
		t.Fatalf("queried %d, want 4 (each node once)", l.Queried())
	}
}

// Rounds counts hops: a node learned from a seed's answer is at depth 2, and one learned again, before it is asked,
// from a nearer hop takes the lower depth.
func TestLookupRoundsCountTheShortestPathToEachNodeAsked(t *testing.T) {
	rng := newRand(222)
	self, target := randID(rng), randKey(rng)
	n := randomEntries(223, 4)
	s1, s2, y, x := n[0], n[1], n[2], n[3]
	l := NewLookup(target, self, []Entry{s1, s2}, 3, 0, 20)
	l.Next()                       // s1 and s2
	l.Succeeded(s1.ID, []Entry{y}) // y at depth 2
	l.Next()                       // y
	if l.Rounds() != 2 {
		t.Fatalf("Rounds %d after asking a node a seed named, want 2", l.Rounds())
	}
	l.Succeeded(y.ID, []Entry{x})  // x at depth 3
	l.Succeeded(s2.ID, []Entry{x}) // and at depth 2, before it was asked
	l.Next()                       // x
	if l.Rounds() != 2 {
		t.Fatalf("Rounds %d after asking a node a seed named too, want 2", l.Rounds())
	}
}
