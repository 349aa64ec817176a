package testkit

// The kills of a broadcast run and the live nodes they leave.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
)

// liveSubscribers returns the nodes in the topic still alive.
func liveSubscribers(sims []*simNode) []*actors.Node {
	var out []*actors.Node
	for _, s := range sims {
		if s.subscribed && !s.dead.Load() {
			out = append(out, s.node)
		}
	}
	return out
}

// drawVictims draws a share of n nodes other than the bootnode (node 0) to kill.
func drawVictims(n int, share float64, rng *rand.Rand) []int {
	order := rng.Perm(n - 1)
	victims := order[:min(int(math.Round(share*float64(n))), len(order))]
	for i := range victims {
		victims[i]++
	}
	return victims
}

// withRoot returns victims with the root most live subscribers follow in place of the last drawn node, unless it is one
// already.
func withRoot(ctx context.Context, sims []*simNode, victims []int) ([]int, error) {
	votes := make(map[session.NodeID]int)
	var root session.NodeID
	for _, s := range sims {
		if !s.subscribed {
			continue
		}
		info, err := s.node.Topic(ctx, simTopic)
		if err != nil {
			return nil, fmt.Errorf("reading the tree's root: %w", err)
		}
		if votes[info.Root]++; votes[info.Root] > votes[root] {
			root = info.Root
		}
	}
	for i, s := range sims {
		if s.node.ID() == root && len(victims) > 0 && !slices.Contains(victims, i) {
			victims[len(victims)-1] = i
		}
	}
	return victims, nil
}

// kill kills the victims: their connections are reset at once, then they are closed in the background.
func kill(sims []*simNode, victims []int) int {
	for _, i := range victims {
		s := sims[i]
		s.dead.Store(true)
		s.killer()
		go func() { _ = s.node.Close() }() // closeAll waits for it: Close is idempotent and blocks until done
	}
	return len(victims)
}

// pickPublisher returns a random live node of pool, or any live subscriber if pool is empty or all dead.
func pickPublisher(sims []*simNode, pool []int, rng *rand.Rand) int {
	live := make([]int, 0, len(pool))
	for _, i := range pool {
		if !sims[i].dead.Load() {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return pickLive(sims, rng)
	}
	return live[rng.IntN(len(live))]
}

// pickLive returns a random live subscriber.
func pickLive(sims []*simNode, rng *rand.Rand) int {
	for {
		if i := rng.IntN(len(sims)); sims[i].subscribed && !sims[i].dead.Load() {
			return i
		}
	}
}
