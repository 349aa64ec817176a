package actors_test

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// oneBucketIdentities returns an identity a and n more whose nodes all fall in the same bucket of a's table.
func oneBucketIdentities(t *testing.T, n int) []*session.Identity {
	t.Helper()
	gen := func() *session.Identity {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ids := []*session.Identity{gen()}
	ka := routing.KeyOf(ids[0].NodeID())
	d := 0
	for d < 254 { // a far bucket, so that the others are quick to find
		ids = append(ids[:1], gen())
		d = routing.LogDistance(ka, routing.KeyOf(ids[1].NodeID()))
	}
	for len(ids) < n+1 {
		if id := gen(); routing.LogDistance(ka, routing.KeyOf(id.NodeID())) == d {
			ids = append(ids, id)
		}
	}
	return ids
}

// smallBuckets configures a discovery-cost test: buckets of two entries, so that a third node of a bucket is a
// newcomer for a full bucket, and node 0's liveness checks as eager as they go (no age, no rate limit to speak of)
// at its revalidation interval, for entries that answered too. No node dials anything but discovery's own requests.
func smallBuckets(ids []*session.Identity, revalidate time.Duration) testkit.Option {
	return testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Identity = ids[i]
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval = time.Hour
		cfg.Routing.Table.K = 2 // every node's: a NODES answer over the asker's k is a violation
		if i == 0 {
			cfg.Routing.Table.Replacements, cfg.Routing.Table.KeepNearest = 4, false
			cfg.Routing.CheckAge, cfg.Routing.CheckRate, cfg.Routing.CheckBurst = 0, 1000, 1000
			cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = revalidate, revalidate
		}
	})
}

// recordAt is id's valid record (sequence 1) at addr.
func recordAt(t *testing.T, id *session.Identity, addr string) *messages.NodeRecord {
	t.Helper()
	rec, err := routing.NewRecord(id, 1, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// record is id's record at node n's address; absentRecord is one at an address nobody listens on.
func record(t *testing.T, id *session.Identity, n *actors.Node) *messages.NodeRecord {
	return recordAt(t, id, n.Addr().Addr)
}

func absentRecord(t *testing.T, id *session.Identity) *messages.NodeRecord {
	return recordAt(t, id, testkit.FreeAddr(t))
}

// TestNewcomerChecksOnlyForWhatTheNodeAsked: a newcomer for a full bucket triggers a liveness check of the bucket's
// stalest entry when the node learned it by asking (here a lookup), but not when the newcomer is a peer asking the
// node. Otherwise a node answering another's check would check one of its own entries, and so on: checks would run
// at their rate limit forever.
func TestNewcomerChecksOnlyForWhatTheNodeAsked(t *testing.T) {
	ids := oneBucketIdentities(t, 3)
	ia, ib, ic := ids[0], ids[1], ids[2]
	nw := testkit.NewNetwork(t, 3, smallBuckets(ids, time.Hour))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	// b and an absent node fill their bucket of a's table.
	a.AddRecords([]*messages.NodeRecord{record(t, ib, b), absentRecord(t, ids[3])})
	b.AddRecords([]*messages.NodeRecord{record(t, ic, c)})
	testkit.WaitFor(t, 5*time.Second, func() bool {
		s, err := a.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) == 2
	}, "b and the absent node in a's table")

	// c asks a: a learns c, a newcomer for b's bucket, from c's request.
	c.AddRecords([]*messages.NodeRecord{record(t, ia, a)})
	if _, err := c.FindClosest(ctxTimeout(t, 5*time.Second), routing.KeyOf(ia.NodeID())); err != nil {
		t.Fatalf("c's lookup: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return stats(t, a).RequestsServed >= 1 }, "a to serve c's lookup")
	if s := stats(t, a); s.NewcomerChecks != 0 || s.Checks != 0 {
		t.Fatalf("a checked %d entries (%d for newcomers) because c asked it for nodes", s.Checks, s.NewcomerChecks)
	}

	// a asks b, which answers with c: a newcomer a learned by asking, so b is checked.
	if _, err := a.FindClosest(ctxTimeout(t, 5*time.Second), routing.KeyOf(ic.NodeID())); err != nil {
		t.Fatalf("a's lookup: %v", err)
	}
	if s := stats(t, a); s.NewcomerChecks == 0 {
		t.Fatal("a learned c from its own lookup and did not check b")
	}
}

// TestLivenessCheckAnswersStartNoChecks: the answer to a liveness check brings newcomers for the full bucket it
// checked, yet starts no check of its own; the periodic revalidation is the only source of checks here.
func TestLivenessCheckAnswersStartNoChecks(t *testing.T) {
	ids := oneBucketIdentities(t, 3)
	ib, ic := ids[1], ids[2]
	nw := testkit.NewNetwork(t, 3, smallBuckets(ids, 20*time.Millisecond))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	b.AddRecords([]*messages.NodeRecord{record(t, ic, c)}) // b answers a's checks with c
	// b and an absent node fill their bucket of a's table; b, the stalest, is checked first.
	a.AddRecords([]*messages.NodeRecord{record(t, ib, b), absentRecord(t, ids[3])})
	var s routing.Stats
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s = stats(t, a)
		return s.Revalidations >= 5
	}, "a to check b 5 times")
	if s.NewcomerChecks != 0 {
		t.Fatalf("the answers to a's checks started %d checks of their own (%d checks in all)", s.NewcomerChecks, s.Checks)
	}
}
