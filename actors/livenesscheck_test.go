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

// A live node whose link stalls once past the liveness checks' RequestTimeout, long enough for several checks, stays
// in the table: the checks that fail in the stall count once (routing.TableConfig.FailureSpacing), and the first
// check due after it is answered. A node that is gone is still evicted, at its first failed check sent
// FailureSpacing after its first failed one. Until the review of stop 60 the revalidation checked a failed entry
// again at its next tick, and two checks in one stall of a loaded host evicted live nodes (a 300-node run where no
// node stopped evicted 162 entries; their records were then refused for 30 minutes).
func TestALiveNodeThatStallsOncePastTheCheckTimeoutIsNotEvicted(t *testing.T) {
	const (
		a, slow, gone = 0, 1, 2
		timeout       = 800 * time.Millisecond
		tick          = 100 * time.Millisecond
		stall         = 3 * timeout
		spacing       = 5 * time.Second
	)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	ids := make([]*session.Identity, 3)
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		ids[i] = cfg.Identity
		cfg.Transport = mn.NewTransport()
		cfg.Bootstrap.TargetOutbound = 0 // no dials but the checks'
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.IntroduceDelay = 0
		cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = time.Hour, time.Hour
		if i == a { // only a checks: the others' requests to a would tell it they are alive
			cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = tick, tick
			cfg.Routing.RequestTimeout = timeout
			cfg.Routing.Table.FailureSpacing = spacing
		}
	}))
	node := nw.Nodes[a]
	if max := routing.DefaultTableConfig().MaxFailures; max != 2 {
		t.Fatalf("MaxFailures %d: the test's stall fails 2 checks or more", max)
	}
	node.AddRecords([]*messages.NodeRecord{record(t, ids[slow], nw.Nodes[slow]), record(t, ids[gone], nw.Nodes[gone])})
	table := func() (map[session.NodeID]routing.Entry, routing.Stats) { return tableOf(t, node) }
	testkit.WaitFor(t, 10*time.Second, func() bool {
		m, _ := table()
		s, g := m[ids[slow].NodeID()], m[ids[gone].NodeID()]
		return s.Answered() && g.Answered()
	}, "both nodes to answer a check")

	// The stall: several checks of the slow node fail in it, one after the other.
	_, st := table()
	failedBefore := st.Revalidations
	mn.SetLink(node.Addr().Addr, nw.Nodes[slow].Addr().Addr, testkit.LinkConfig{Latency: stall})
	stallEnds := time.Now().Add(stall)
	failed := false
	testkit.WaitFor(t, 10*time.Second, func() bool {
		m, st := table()
		e, ok := m[ids[slow].NodeID()]
		failed = failed || ok && e.Failures > 0
		if !ok || st.Evictions > 0 {
			t.Fatalf("the slow node evicted in its stall: in the table %v, Evictions %d", ok, st.Evictions)
		}
		return failed && time.Now().After(stallEnds)
	}, "a failed check of the slow node and the stall's end")
	mn.SetLink(node.Addr().Addr, nw.Nodes[slow].Addr().Addr, testkit.LinkConfig{})
	testkit.WaitFor(t, 2*spacing, func() bool {
		m, st := table()
		e, ok := m[ids[slow].NodeID()]
		if !ok || st.Evictions > 0 {
			t.Fatalf("the slow node evicted after its stall: in the table %v, Evictions %d", ok, st.Evictions)
		}
		return e.Answered()
	}, "the slow node to answer a check after its stall")
	if _, st := table(); st.Revalidations-failedBefore < 2 {
		t.Logf("only %d checks ended during and after the stall", st.Revalidations-failedBefore)
	}

	// The gone node: evicted at its first failed check sent FailureSpacing after its first failed one, the first
	// coming within a tick or two (3/2 of RevalidateAnsweredInterval at most) and a check taking RequestTimeout.
	nw.Kill(gone)
	killed := time.Now()
	bound := 2*(tick*3/2+timeout) + spacing + time.Second // a second's slack for a loaded host
	testkit.WaitFor(t, bound, func() bool {
		m, _ := table()
		_, ok := m[ids[gone].NodeID()]
		return !ok
	}, "the gone node's eviction within %v", bound)
	if took := time.Since(killed); took < spacing {
		t.Fatalf("the gone node evicted %v after it stopped, before FailureSpacing (%v)", took, spacing)
	}
	m, st := table()
	if _, ok := m[ids[slow].NodeID()]; !ok || st.Evictions != 1 {
		t.Fatalf("the slow node in the table %v, Evictions %d; want kept, 1 (the gone node)", ok, st.Evictions)
	}
}
