package actors

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// relookupFirst's doc: "the wait doubles from relookupFirst at each lookup, up to relookupMax". A peer that stays
// down is looked up again after 1 s, then 2 s, then 4 s...; a flat 1 s wait takes a lookup place every second
// per peer that is down (the review's finding the doubling answered).
func TestRelookupWaitsDouble(t *testing.T) {
	r := &relookups{at: make(map[session.NodeID]relookup)}
	var peer session.NodeID
	peer[0] = 1
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {500 * time.Millisecond, false}, {time.Second, true}, // waits 1 s, then 2 s
		{2 * time.Second, false}, {3 * time.Second, true}, // then 4 s
		{5 * time.Second, false}, {7 * time.Second, true},
	}
	for _, s := range steps {
		if got := r.take(peer, t0.Add(s.at)); got != s.want {
			t.Fatalf("take at %v = %v, want %v (waits doubling from %v)", s.at, got, s.want, relookupFirst)
		}
	}
}
