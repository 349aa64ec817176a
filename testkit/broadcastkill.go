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

// drawVictims draws a share of the nodes other than the bootnode (node 0) to kill, sparing subscribers so that two
// stay alive: the publisher and a node to receive. It kills fewer than the share only when the nodes left are too
// few subscribers (BroadcastScenario's check leaves two nodes at least).
func drawVictims(sims []*simNode, share float64, rng *rand.Rand) []int {
	want := min(victimCount(len(sims), share), len(sims)-1)
	spare := 2 // subscribers that must stay alive
	if sims[0].subscribed {
		spare--
	}
	subscribers := 0
	for _, s := range sims[1:] {
		if s.subscribed {
			subscribers++
		}
	}
	var victims []int
	for _, i := range rng.Perm(len(sims) - 1) {
		if len(victims) == want {
			break
		}
		i++
		if sims[i].subscribed {
			if subscribers <= spare {
				continue
			}
			subscribers--
		}
		victims = append(victims, i)
	}
	return victims
}

// victimCount is the number of nodes a kill share of n nodes asks for.
func victimCount(n int, share float64) int { return int(math.Round(share * float64(n))) }

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

// pickPublisher returns a random live node of pool, or any live subscriber if pool is empty or all dead (-1 if
// none is left).
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

// pickLive returns a random live subscriber, or -1 if none is left.
func pickLive(sims []*simNode, rng *rand.Rand) int {
	if !slices.ContainsFunc(sims, func(s *simNode) bool { return s.subscribed && !s.dead.Load() }) {
		return -1 // the draw below would never end
	}
	for { // drawn as before, so that a seed picks the publishers it picked
		if i := rng.IntN(len(sims)); sims[i].subscribed && !sims[i].dead.Load() {
			return i
		}
	}
}
