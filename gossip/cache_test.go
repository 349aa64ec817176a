package gossip

import (
	"testing"
	"unsafe"
)

// TestCachedHolders: a cached message knows who holds it (its sender, its origin, the peers added), remembers at most
// maxHolders of them, and stays small: the cache holds every message of HistoryLength heartbeats.
func TestCachedHolders(t *testing.T) {
	m := msg("x")
	m.Origin = nid(1)
	e := newCached(m, nid(2), t0, 0)
	for i := 3; i < 3+maxHolders+4; i++ {
		e.addHolder(nid(i))
		e.addHolder(nid(i)) // counted once
	}
	for i := 1; i < 3+maxHolders; i++ {
		if !e.held(nid(i)) {
			t.Fatalf("peer %d not known to hold the message", i)
		}
	}
	for i := 3 + maxHolders; i < 3+maxHolders+8; i++ {
		if e.held(nid(i)) {
			t.Fatalf("peer %d held beyond the %d holders remembered", i, maxHolders)
		}
	}
	if size := unsafe.Sizeof(cached{}); size > 144 {
		t.Fatalf("a cached entry takes %d bytes", size)
	}
}
