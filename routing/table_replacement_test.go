package routing

import (
	"fmt"
	"testing"
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
