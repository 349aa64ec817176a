package actors_test

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// checkerConfig makes node checker of a test network check its table every tick, count every failed check
// (FailureSpacing 0: checks one after the other each count) and make no dial but its checks'; the others never
// check theirs.
func checkerConfig(checker int, tick time.Duration, ids []*session.Identity, more func(i int, cfg *actors.Config)) testkit.Option {
	return testkit.WithConfig(func(i int, cfg *actors.Config) {
		ids[i] = cfg.Identity
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.IntroduceDelay = 0
		cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = time.Hour, time.Hour
		if i == checker {
			cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = tick, tick
			cfg.Routing.Table.FailureSpacing = 0
		}
		if more != nil {
			more(i, cfg)
		}
	})
}

// An introduction tick starts at most Routing.MaxIntroductions liveness checks at once; the tick's others start as
// those end, and every neighbour learned second-hand is introduced to in the end. A tick used to start its up to K
// checks together, K dials and handshakes in one instant, each with its 2 s to answer while the host was busiest.
func TestIntroductionsStartAtMostMaxIntroductionsChecksAtOnce(t *testing.T) {
	const (
		a, peers = 0, 8
		bound    = 2
	)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	ids := make([]*session.Identity, peers+1)
	nw := testkit.NewNetwork(t, peers+1, checkerConfig(-1, 0, ids, func(i int, cfg *actors.Config) {
		cfg.Transport = mn.NewTransport()
		if i == a {
			cfg.Routing.IntroduceDelay = 50 * time.Millisecond
			cfg.Routing.MaxIntroductions = bound
		}
	}))
	node := nw.Nodes[a]
	var recs []*messages.NodeRecord
	for i := 1; i <= peers; i++ {
		// Each check takes a few round trips of 100 ms: checks started together overlap.
		mn.SetLink(node.Addr().Addr, nw.Nodes[i].Addr().Addr, testkit.LinkConfig{Latency: 100 * time.Millisecond})
		recs = append(recs, record(t, ids[i], nw.Nodes[i]))
	}
	node.AddRecords(recs) // learned second-hand: a introduces itself to each, IntroduceDelay later
	most := 0
	testkit.WaitFor(t, 30*time.Second, func() bool {
		m, st := tableOf(t, node)
		if inFlight := int(st.Checks - st.Revalidations); inFlight > most {
			most = inFlight
		}
		if most > bound {
			t.Fatalf("%d introductions in progress at once, more than MaxIntroductions (%d)", most, bound)
		}
		answered := 0
		for _, e := range m {
			if e.Answered() {
				answered++
			}
		}
		return answered == peers && st.Introductions == peers
	}, "every peer introduced to and answered")
	if most == 0 {
		t.Fatal("no introduction seen in progress")
	}
}
