//go:build !race

// The large-network tests run 100 real nodes over TCP. Under the race detector they would need far more than the two
// cores CI has, so they are built without it; .ci/run runs them in a separate step (go test -run '^TestLarge' ./...).

package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

func TestLargeHundredNodesConvergeFromOneBootnode(t *testing.T) {
	const n = 100
	nw := testkit.NewNetwork(t, n, testkit.WithBootnode(), testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 200 * time.Millisecond
		cfg.MaxInboundPeers, cfg.MaxOutboundPeers = 200, 200 // room for a connection to every node: lookups reuse them
	}))
	// Every node finds every other by Lookup. Nodes look up in parallel, each its 99 targets in turn; a lookup that
	// misses while the network is still joining is retried until the deadline.
	start := time.Now()
	ctx := ctxTimeout(t, 5*time.Minute)
	var (
		mu       sync.Mutex
		failures []string
		retries  int
		lookups  int
		wg       sync.WaitGroup
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				if i == j {
					continue
				}
				var lastErr error
				tries := 0
				err := testkit.Poll(ctx, 2*time.Minute, func() bool {
					tries++
					lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					addr, err := nw.Nodes[i].Lookup(lctx, nw.Nodes[j].ID())
					if err == nil && addr != nw.Nodes[j].Addr() {
						err = fmt.Errorf("found %s, want %s", addr, nw.Nodes[j].Addr())
					}
					lastErr = err
					return err == nil
				})
				mu.Lock()
				lookups++
				retries += tries - 1
				if err != nil {
					failures = append(failures, fmt.Sprintf("node %d cannot find node %d: %v", i, j, lastErr))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 5 {
		t.Errorf("%d lookups failed", len(failures))
		failures = failures[:5]
	}
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d lookups (%d retried) in %v", lookups, retries, time.Since(start))
}

func TestLargeLookupsSucceedWithTwentyPercentKilled(t *testing.T) {
	const n, killed = 100, 20
	nw := testkit.NewNetwork(t, n, testkit.WithBootnode(), testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 200 * time.Millisecond
	}))
	testkit.WaitFor(t, time.Minute, func() bool {
		for _, node := range nw.Nodes {
			s, err := node.RoutingTable(context.Background())
			if err != nil || len(s.Entries) < 20 {
				return false
			}
		}
		return true
	}, "every table holds at least 20 nodes")
	// Kill the last 20 nodes (ids are random, so these are spread over the key space); the bootnode stays.
	for _, node := range nw.Nodes[n-killed:] {
		if err := node.Close(); err != nil {
			t.Fatal(err)
		}
	}
	live := nw.Nodes[:n-killed]
	const workers, perWorker = 10, 30
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perWorker; k++ {
				from, to := live[(w*perWorker+k*7)%len(live)], live[(w*13+k*31+1)%len(live)]
				if from == to {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				addr, err := from.Lookup(ctx, to.ID())
				cancel()
				mu.Lock()
				if err != nil || addr != to.Addr() {
					failures = append(failures, fmt.Sprintf("lookup of %s: %v %v", to.ID().Short(), addr, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	s, _ := live[0].RoutingTable(context.Background())
	t.Logf("%d lookups with %d of %d nodes dead; node 0 stats %+v", workers*perWorker, killed, n, s.Stats)
}
