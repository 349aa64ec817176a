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

// A node that stops answering leaves the table of a node whose lookups it fails, MaxLookupFailures of them in a
// row, long before the revalidation would check it (its intervals are an hour here); a good node that misses one
// lookup's request (down while it ran) and answers the next stays. Until stop 60 a lookup's failures were held
// against nobody: the gone node stayed, handed to every lookup and to every node that asked, until a liveness check
// found it.
func TestANodeThatStopsAnsweringLeavesTheTableAfterTheLookupsFailures(t *testing.T) {
	const a, flaky, gone, steady = 0, 1, 2, 3
	ids := make([]*session.Identity, 4)
	nw := testkit.NewNetwork(t, 4, testkit.WithConfig(func(i int, cfg *actors.Config) {
		ids[i] = cfg.Identity
		cfg.Bootstrap.TargetOutbound = 0 // no dials but the lookups'
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = time.Hour, time.Hour
		cfg.Routing.IntroduceDelay = 0
		cfg.Routing.Table.LookupFailureSpacing = 0 // the lookups follow each other at once
	}))
	node := nw.Nodes[a]
	max := routing.DefaultTableConfig().MaxLookupFailures
	if max != 3 {
		t.Fatalf("MaxLookupFailures %d: the test runs 3 lookups", max)
	}
	var recs []*messages.NodeRecord
	for _, i := range []int{flaky, gone, steady} {
		recs = append(recs, record(t, ids[i], nw.Nodes[i]))
	}
	node.AddRecords(recs)
	table := func() (map[session.NodeID]routing.Entry, routing.Stats) { return tableOf(t, node) }
	lookup := func(what string) {
		t.Helper()
		if _, err := node.FindClosest(ctxTimeout(t, 10*time.Second), routing.KeyOf(ids[gone].NodeID())); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	lookup("the first lookup")
	entries, _ := table()
	for _, i := range []int{flaky, gone, steady} {
		if e, ok := entries[ids[i].NodeID()]; !ok || !e.Answered() {
			t.Fatalf("node %d in the table %v, answered %v: want every node in the table, answered", i, ok, e.Answered())
		}
	}

	// flaky misses one lookup's request, gone every one from now on.
	nw.Kill(flaky)
	nw.Kill(gone)
	testkit.WaitFor(t, 5*time.Second, func() bool {
		return !node.Connected(ids[flaky].NodeID()) && !node.Connected(ids[gone].NodeID())
	}, "the killed nodes' connections to close")
	lookup("the lookup that misses flaky")
	entries, _ = table()
	if e := entries[ids[flaky].NodeID()]; e.LookupFailures != 1 {
		t.Fatalf("flaky's LookupFailures %d after the lookup it missed, want 1", e.LookupFailures)
	}
	nw.Restart(flaky)
	for n := 2; n <= max; n++ {
		lookup("a lookup with flaky back")
		entries, _ = table()
		if e, ok := entries[ids[flaky].NodeID()]; !ok || e.LookupFailures != 0 {
			t.Fatalf("after lookup %d: flaky in the table %v, LookupFailures %d; want kept, 0 since it answered", n, ok,
				e.LookupFailures)
		}
		if e, ok := entries[ids[gone].NodeID()]; ok != (n < max) || ok && e.LookupFailures != n {
			t.Fatalf("after lookup %d of %d that failed to reach it: gone in the table %v, LookupFailures %d", n, max, ok,
				e.LookupFailures)
		}
	}
	entries, st := table()
	if _, ok := entries[ids[steady].NodeID()]; !ok || len(entries) != 2 {
		t.Fatalf("%d entries, steady among them %v; want flaky and steady", len(entries), ok)
	}
	if st.LookupEvictions != 1 || st.Revalidations != 0 || st.Evictions != 0 {
		t.Fatalf("LookupEvictions %d, Revalidations %d, Evictions %d; want 1, 0, 0", st.LookupEvictions, st.Revalidations,
			st.Evictions)
	}
}

// Lookups that run at once and each find the same node slow count as one failure against it, not one each: a node
// that stalls past RequestTimeout once (a pause, a congested link) while the node runs MaxLookupFailures lookups
// that ask it is not removed, and kept out of the table by its gone mark for 30 minutes. Until the review of stop
// 60 the requests that overlapped, all failed by the one stall, were counted as a run of MaxLookupFailures.
func TestLookupsThatOverlapCountOneStallOnce(t *testing.T) {
	const a, slow, x, y = 0, 1, 2, 3
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	ids := make([]*session.Identity, 4)
	nw := testkit.NewNetwork(t, 4, testkit.WithConfig(func(i int, cfg *actors.Config) {
		ids[i] = cfg.Identity
		cfg.Transport = mn.NewTransport()
		cfg.Bootstrap.TargetOutbound = 0 // no dials but the lookups'
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = time.Hour, time.Hour
		cfg.Routing.IntroduceDelay = 0
		cfg.Routing.Table.LookupFailureSpacing = 0 // the overlap rule alone: a request sent before the last failure
	}))
	node := nw.Nodes[a]
	max := routing.DefaultTableConfig().MaxLookupFailures
	var recs []*messages.NodeRecord
	for _, i := range []int{slow, x, y} {
		recs = append(recs, record(t, ids[i], nw.Nodes[i]))
	}
	node.AddRecords(recs)
	entry := func() (routing.Entry, bool, routing.Stats) {
		s, err := node.RoutingTable(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Entries {
			if e.ID == ids[slow].NodeID() {
				return e, true, s.Stats
			}
		}
		return routing.Entry{}, false, s.Stats
	}
	if _, err := node.FindClosest(ctxTimeout(t, 10*time.Second), routing.KeyOf(ids[slow].NodeID())); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := entry(); !ok || !e.Answered() {
		t.Fatalf("the slow node in the table %v, answered %v; want both", ok, e.Answered())
	}

	// One stall of the slow node's link, longer than a lookup's request may take, during which max lookups ask it.
	stall := 2 * actors.DefaultConfig().Routing.RequestTimeout
	mn.SetLink(node.Addr().Addr, nw.Nodes[slow].Addr().Addr, testkit.LinkConfig{Latency: stall})
	errs := make(chan error, max)
	for range max {
		go func() {
			_, err := node.FindClosest(ctxTimeout(t, 10*time.Second), routing.KeyOf(ids[slow].NodeID()))
			errs <- err
		}()
	}
	for range max {
		if err := <-errs; err != nil {
			t.Fatalf("a lookup during the stall: %v (the other nodes answer)", err)
		}
	}
	mn.SetLink(node.Addr().Addr, nw.Nodes[slow].Addr().Addr, testkit.LinkConfig{})
	// At most 1: the dials the stall held up may have come through since, and the node answered their exchange.
	e, ok, st := entry()
	if !ok || e.LookupFailures > 1 || st.LookupEvictions != 0 {
		t.Fatalf("after %d lookups at once that one stall failed: the slow node in the table %v, LookupFailures %d, "+
			"LookupEvictions %d; want kept with at most 1, 0", max, ok, e.LookupFailures, st.LookupEvictions)
	}
}

// tableOf returns node's routing table entries by id and its routing counters.
func tableOf(t *testing.T, node *actors.Node) (map[session.NodeID]routing.Entry, routing.Stats) {
	t.Helper()
	s, err := node.RoutingTable(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[session.NodeID]routing.Entry)
	for _, e := range s.Entries {
		m[e.ID] = e
	}
	return m, s.Stats
}
