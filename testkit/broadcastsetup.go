package testkit

// The broadcast scenario's setup: its progress reports, the draw of the topic's members and the wait for them to
// be in the topic.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
)

// setupProgressEvery is the gap between the progress lines of a long setup.
var setupProgressEvery = 5 * time.Second

// setupProgress reports, every setupProgressEvery from its own goroutine until stop, how many nodes reached the
// setup's current stage: "setup: 143/200 nodes started (12 s)".
type setupProgress struct {
	mu    sync.Mutex
	stage string // what the nodes counted in done did: "started", "subscribed", "in the topic"
	done  int
	total int    // the nodes the stage concerns
	stop  func() // stops the goroutine and waits for it; idempotent
}

// startSetupProgress starts the reports of a setup of total nodes that began at start; progress must be safe for
// concurrent use.
func startSetupProgress(progress func(string), total int, start time.Time) *setupProgress {
	p := &setupProgress{stage: "started", total: total}
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(max(setupProgressEvery, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				p.mu.Lock()
				stage, done, total := p.stage, p.done, p.total
				p.mu.Unlock()
				progress(fmt.Sprintf("setup: %d/%d nodes %s (%.0f s)", done, total, stage, now.Sub(start).Seconds()))
			}
		}
	}()
	p.stop = sync.OnceFunc(func() { close(quit); <-exited })
	return p
}

// set records that done nodes of total reached stage (total: the nodes the stage concerns, the subscribers for the
// topic's stages: with N it read "0/20 nodes in the topic" when 2 of 20 subscribed).
func (p *setupProgress) set(stage string, done, total int) {
	p.mu.Lock()
	p.stage, p.done, p.total = stage, done, total
	p.mu.Unlock()
}

// waitReady waits until every node has a topic peer and, with the spanning tree, a place in it (a parent, or it
// is the root with a child), and with connected until the nodes' topic peers link them all into one graph (a few
// members of a topic who find each other through the DHT may form islands first, which their next searches join).
// It returns the share of nodes ready and when the wait ended: the instant the condition was first seen to hold,
// or, when timeout passed with minShare of the nodes ready, the end of the timeout. onReady gets the count of ready
// nodes as it grows.
func waitReady(ctx context.Context, nodes []*actors.Node, timeout time.Duration, minShare float64, connected bool,
	onReady func(int)) (float64, time.Time, error) {
	ready := make([]bool, len(nodes))
	count := 0
	var at time.Time
	err := Poll(ctx, timeout, func() bool {
		for i, n := range nodes {
			if ready[i] {
				continue
			}
			info, err := n.Topic(ctx, simTopic)
			if ready[i] = err == nil && len(info.Peers) > 0 && (len(info.TreeLinks) > 0 || len(info.Eager)+len(info.Lazy) > 0); ready[i] {
				count++
				onReady(count)
			}
		}
		if count == len(nodes) && (!connected || topicComponents(ctx, nodes) == 1) {
			at = time.Now()
			return true
		}
		return false
	})
	if at.IsZero() {
		at = time.Now()
	}
	share := float64(count) / float64(len(nodes))
	if err != nil && share >= minShare && ctx.Err() == nil {
		err = nil // enough: the others count as missed deliveries
	}
	if err != nil {
		missing, lonely := 0, 0
		for i, r := range ready {
			if !r {
				missing++
				if len(nodes[i].Peers()) == 0 {
					lonely++
				}
			}
		}
		if lonely > 0 {
			return share, at, fmt.Errorf("broadcast scenario: %d of %d nodes without a topic peer or a tree link (%d without any connection): %w", missing, len(nodes), lonely, err)
		}
		return share, at, fmt.Errorf("broadcast scenario: %d of %d nodes without a topic peer or a tree link: %w", missing, len(nodes), err)
	}
	return share, at, nil
}

// topicComponents counts the connected components of the graph the nodes' topic peers make, each link taken
// both ways (1: connected; a node whose Topic fails counts by the links the others list to it).
func topicComponents(ctx context.Context, nodes []*actors.Node) int {
	index := make(map[session.NodeID]int, len(nodes))
	for i, n := range nodes {
		index[n.ID()] = i
	}
	parent := make([]int, len(nodes))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	components := len(nodes)
	for i, n := range nodes {
		info, err := n.Topic(ctx, simTopic)
		if err != nil {
			continue
		}
		for _, p := range info.Peers {
			if j, ok := index[p]; ok {
				if a, b := find(i), find(j); a != b {
					parent[a] = b
					components--
				}
			}
		}
	}
	return components
}

// drawSubscribers marks the nodes that join the topic, n of them drawn from rng (0: all, and rng is not used), and
// returns their nodes in the order of sims.
func drawSubscribers(sims []*simNode, n int, rng *rand.Rand) []*actors.Node {
	if n > 0 {
		for _, i := range rng.Perm(len(sims))[:n] {
			sims[i].subscribed = true
		}
	}
	var out []*actors.Node
	for _, s := range sims {
		s.subscribed = s.subscribed || n == 0
		if s.subscribed {
			out = append(out, s.node)
		}
	}
	return out
}
