package testkit

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// simNodes returns n nodes for the kill and summary helpers, the listed ones subscribed.
func simNodes(n, messages int, subscribed ...int) []*simNode {
	sims := make([]*simNode, n)
	for i := range sims {
		sims[i] = &simNode{recv: make([]atomic.Int64, messages), hops: make([]atomic.Uint32, messages)}
	}
	for _, i := range subscribed {
		sims[i].subscribed = true
	}
	return sims
}

// A kill spares two subscribers, whatever it draws: with two subscribers out of 20 and a kill of 60 %, some seeds
// killed both, and the publisher draw then looped for ever (node sim hung at 100 % CPU, deaf to SIGTERM).
func TestAKillSparesTwoSubscribers(t *testing.T) {
	for seed := range uint64(50) {
		sims := simNodes(20, 1, 3, 7)
		rng := rand.New(rand.NewPCG(seed, seed))
		victims := drawVictims(sims, 0.6, rng)
		if len(victims) != 12 {
			t.Fatalf("seed %d: %d victims, want 12", seed, len(victims))
		}
		for _, i := range victims {
			if i == 0 {
				t.Fatalf("seed %d: the bootnode was killed", seed)
			}
			sims[i].dead.Store(true)
		}
		if p := pickPublisher(sims, nil, rng); p != 3 && p != 7 {
			t.Fatalf("seed %d: publisher %d, want a live subscriber (3 or 7)", seed, p)
		}
	}
}

// The publisher draw gives up when no subscriber is alive rather than loop for ever.
func TestThePublisherDrawEndsWithoutALiveSubscriber(t *testing.T) {
	sims := simNodes(20, 1, 3, 7)
	sims[3].dead.Store(true)
	sims[7].dead.Store(true)
	if p := pickPublisher(sims, []int{3, 7}, rand.New(rand.NewPCG(1, 2))); p != -1 {
		t.Fatalf("publisher %d with every subscriber dead, want -1", p)
	}
}

// A message with no live node to receive it but its publisher measures nothing: the summary used to index an
// empty list of delays and panic, losing every figure of the run.
func TestTheSummarySkipsAMessageWithNoReceiver(t *testing.T) {
	sims := simNodes(3, 1, 0, 1, 2)
	sims[1].dead.Store(true)
	sims[2].dead.Store(true)
	var rep BroadcastReport
	summarize(&rep, sims, []int{0}, []time.Time{time.Now()})
	if rep.P100Ms != -1 || rep.Deliveries != 0 {
		t.Fatalf("p100 %v, deliveries %d: want -1 (nothing measured) and 0", rep.P100Ms, rep.Deliveries)
	}
}

// A message some live node never received counts as slow even when the median message did not reach every node
// either (p100 then reads -1): the worst runs read slow_messages 0.
func TestMessagesNeverReceivedEverywhereAreSlow(t *testing.T) {
	sims := simNodes(3, 3, 0, 1, 2)
	start := time.Now()
	published := []time.Time{start, start, start}
	for i := 1; i < 3; i++ {
		sims[i].recv[0].Store(start.Add(20 * time.Millisecond).UnixNano()) // message 0 reaches both
	}
	sims[1].recv[1].Store(start.Add(20 * time.Millisecond).UnixNano()) // messages 1 and 2 miss node 2
	sims[1].recv[2].Store(start.Add(20 * time.Millisecond).UnixNano())
	var rep BroadcastReport
	summarize(&rep, sims, []int{0, 0, 0}, published)
	if rep.P100Ms != -1 || rep.SlowMessages != 2 || math.Abs(rep.DeliveryRatio-4.0/6) > 1e-9 {
		t.Fatalf("p100 %v, slow %d, delivery %v: want -1, 2 and 4/6", rep.P100Ms, rep.SlowMessages, rep.DeliveryRatio)
	}
}

// The setup's progress counts the nodes a stage concerns: the subscribers for the topic's stages (it read
// "0/20 nodes in the topic" when 2 of 20 subscribed, a count that could never be reached).
func TestSetupProgressCountsTheNodesOfTheStage(t *testing.T) {
	every := setupProgressEvery
	setupProgressEvery = time.Millisecond
	t.Cleanup(func() { setupProgressEvery = every })
	lines := make(chan string, 16)
	p := startSetupProgress(func(s string) {
		select {
		case lines <- s:
		default:
		}
	}, 20, time.Now())
	defer p.stop()
	p.set("in the topic", 1, 2)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line := <-lines:
			if !strings.Contains(line, "in the topic") {
				continue
			}
			if !strings.Contains(line, "1/2 nodes in the topic") {
				t.Fatalf("progress %q, want 1/2 nodes in the topic", line)
			}
			return
		case <-deadline:
			t.Fatal("no progress line of the topic's stage within 10 s")
		}
	}
}
