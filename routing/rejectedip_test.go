package routing

import (
	"fmt"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// The table's refusals for its IP limits count in Stats.RejectedIP: twelve valid, dialable records of one /24 leave
// TableIPLimit (10) of them in the table and its replacement caches, and the two others were counted nowhere
// before stop 54 (an audit's finding).
func TestTableIPRefusalsAreCounted(t *testing.T) {
	rig := newRevalidationRig(t, 72)
	a := rig.actor(t, &stallingNet{id: rig.self})
	a.records = newVerifiedRecords(1024)
	const n = 12
	for i := range n {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		rec, err := NewRecord(id, 1, []string{fmt.Sprintf("198.51.100.%d:4001", 10+i)})
		if err != nil {
			t.Fatal(err)
		}
		a.addRecord(rec, t0, false, false)
	}
	held := rig.tab.Len()
	for _, l := range rig.tab.ReplacementLens() {
		held += l
	}
	if refused := uint64(n - held); refused == 0 || a.stats.RejectedIP != refused || a.stats.BadRecords != 0 {
		t.Fatalf("%d of %d records held; RejectedIP %d, BadRecords %d: want every refused one in RejectedIP", held, n, a.stats.RejectedIP, a.stats.BadRecords)
	}
}
