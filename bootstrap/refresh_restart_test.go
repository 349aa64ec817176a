package bootstrap

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// A join starts the schedule over and forgets the neighbourhood: the first self-lookup after it that is far enough
// from the join's (here after four early refreshes whose lookups failed) is compared with nothing, not with the
// neighbourhood found before the node was lost, which would end the early refreshes on stale news.
func TestARestartForgetsTheNeighbourhood(t *testing.T) {
	r := newRefreshSchedule(time.Second, time.Hour, nil)
	now := time.Unix(1000, 0)
	r.restart(now)
	old := []session.NodeID{{1}, {2}}
	r.neighbourhood(old)
	r.restart(now)
	for range 4 {
		r.start(now)
	}
	r.neighbourhood(old)
	if r.gap >= r.full {
		t.Fatalf("the gap is the full interval (%v) after a self-lookup that only agreed with one before the restart", r.gap)
	}
}
