package testkit

import (
	"context"
	"testing"
	"time"
)

// A discovery run of a few nodes converges (every node holds its true closest nodes: all the others here) and its
// lookups all find their targets.
func TestRunDiscoveryOfAFewNodesConverges(t *testing.T) {
	rep, err := RunDiscovery(context.Background(), DiscoveryScenario{N: 4, Lookups: 10, Workers: 2, Transport: "mem",
		ConvergeTimeout: 30 * time.Second, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Converged || rep.MinClosestShare != 1 || rep.Lookups != 10 || rep.LookupSuccess != 1 {
		t.Fatalf("converged %v (share %v), %d lookups, success %v: want converged (1), 10, 1",
			rep.Converged, rep.MinClosestShare, rep.Lookups, rep.LookupSuccess)
	}
	if rep.Evictions != 0 || rep.LookupEvictions != 0 {
		t.Fatalf("%d entries evicted by liveness checks, %d by lookups' failures, in a network where every node answers",
			rep.Evictions, rep.LookupEvictions)
	}
}
