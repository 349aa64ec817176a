package routing

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func TestGoneNodesHoldTheirRecordUntilNewerOrExpired(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	g := newGoneNodes(2, time.Minute)
	a, b, c := session.NodeID{1}, session.NodeID{2}, session.NodeID{3}
	g.add(a, 10, t0)
	if !g.holds(a, 10, t0.Add(time.Second)) || !g.holds(a, 9, t0.Add(time.Second)) {
		t.Fatal("the evicted node's record (or an older one) relayed by others is news")
	}
	if g.holds(a, 11, t0.Add(time.Second)) {
		t.Fatal("a newer record of the evicted node (it restarted) is held back")
	}
	if g.holds(b, 1, t0) {
		t.Fatal("a node never evicted is held back")
	}
	g.add(b, 5, t0.Add(2*time.Second))
	g.add(c, 5, t0.Add(3*time.Second)) // over the bound: the oldest, a, goes
	if g.len() != 2 || g.holds(a, 10, t0.Add(4*time.Second)) || !g.holds(b, 5, t0.Add(4*time.Second)) {
		t.Fatalf("past the bound: %d remembered, a held %v, b held %v; want 2, the oldest (a) gone", g.len(),
			g.holds(a, 10, t0.Add(4*time.Second)), g.holds(b, 5, t0.Add(4*time.Second)))
	}
	if g.holds(b, 5, t0.Add(2*time.Second+time.Minute)) || g.len() != 1 {
		t.Fatal("an eviction older than the TTL still holds, or is still remembered")
	}
	g.forget(c)
	if g.holds(c, 5, t0.Add(4*time.Second)) || g.len() != 0 {
		t.Fatal("a node that contacted us is still held back")
	}
}
