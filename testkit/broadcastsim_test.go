package testkit

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
)

// checkLeaks makes t fail if goroutines outlive it.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		goleak.VerifyNone(t,
			// protoactor's dead-letter throttle runs a one-shot timer goroutine.
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1"),
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1"),
		)
	})
}

func TestRunBroadcastDetailAndSetupProgress(t *testing.T) {
	checkLeaks(t)
	every := setupProgressEvery
	setupProgressEvery = time.Millisecond // many lines: the setup takes a gossip heartbeat or more
	t.Cleanup(func() { setupProgressEvery = every })

	var lines []string // RunBroadcast never calls Progress concurrently
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunBroadcast(ctx, BroadcastScenario{N: 6, Degree: 3, Messages: 4, Size: 64, Interval: 5 * time.Millisecond,
		Latency: time.Millisecond, Seed: 3, Progress: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatal(err)
	}
	// Setup lines come in stage order, counts growing within a stage; the last says every node is in the topic
	// and none comes once publishing starts.
	line := regexp.MustCompile(`^setup: (\d)/6 nodes (started|subscribed|in the topic) \(\d+ s\)$`)
	stages := []string{"started", "subscribed", "in the topic"}
	var setup []string
	stage, count, publishing := 0, 0, false
	for _, l := range lines {
		publishing = publishing || strings.HasPrefix(l, "publishing")
		if !strings.HasPrefix(l, "setup:") {
			continue
		}
		setup = append(setup, l)
		m := line.FindStringSubmatch(l)
		if m == nil || publishing {
			t.Fatalf("setup line %q (publishing: %v)", l, publishing)
		}
		s, n := slices.Index(stages, m[2]), int(m[1][0]-'0')
		if s < stage || s == stage && n < count {
			t.Fatalf("setup went back: %q after stage %d, %d nodes", l, stage, count)
		}
		stage, count = s, n
	}
	if len(setup) == 0 || !strings.HasPrefix(setup[len(setup)-1], "setup: 6/6 nodes in the topic (") {
		t.Fatalf("setup lines: %q", setup)
	}
	t.Logf("%d setup lines, from %q to %q", len(setup), setup[0], setup[len(setup)-1])

	d := rep.Detail
	if d == nil || d.Seed != 3 || len(d.Messages) != 4 || rep.DeliveryRatio != 1 {
		t.Fatalf("report %+v, detail %+v", rep, d)
	}
	var delays []float64
	for i, m := range d.Messages {
		if !m.Published || m.Expected != 5 || len(m.Delays) != 5 || !slices.IsSorted(m.Delays) || m.Delays[0] <= 0 ||
			i == 0 && m.AtMs != 0 || i > 0 && m.AtMs <= d.Messages[i-1].AtMs {
			t.Errorf("message %d: %+v", i, m)
		}
		delays = append(delays, m.Delays...)
	}
	slices.Sort(delays)
	if d.DelayCount != rep.Deliveries || !slices.Equal(d.Delays, delays) {
		t.Errorf("delay sample %v of %d, want every delay %v", d.Delays, d.DelayCount, delays)
	}
	hops, most := 0, 0
	for h, n := range d.Hops {
		hops += n
		most = max(most, h)
	}
	if hops != rep.Deliveries || most != rep.MaxHops {
		t.Errorf("hop histogram %v: %d deliveries up to %d hops, report %d up to %d", d.Hops, hops, most, rep.Deliveries, rep.MaxHops)
	}
	b, err := json.Marshal(rep)
	if err != nil || strings.Contains(string(b), "delays_ms") || strings.Contains(string(b), "seed") {
		t.Errorf("the JSON figures carry the detail: %s (%v)", b, err)
	}
}

func TestRunBroadcastPublishersAndHeartbeat(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var heartbeats []time.Duration
	rep, err := RunBroadcast(ctx, BroadcastScenario{N: 8, Degree: 3, Messages: 12, Size: 64, Interval: 5 * time.Millisecond,
		Latency: time.Millisecond, Seed: 5, Publishers: 2, Heartbeat: 300 * time.Millisecond,
		Configure: func(_ int, cfg *actors.Config) {
			mu.Lock()
			defer mu.Unlock()
			heartbeats = append(heartbeats, cfg.Gossip.Router.HeartbeatInterval)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeliveryRatio != 1 || rep.Publishers != 2 || rep.HeartbeatMs != 300 {
		t.Fatalf("report %+v", rep)
	}
	// Twelve messages from two nodes: the same seed without Publishers draws more.
	from := map[int]bool{}
	for _, m := range rep.Detail.Messages {
		from[m.Publisher] = true
	}
	if len(from) < 1 || len(from) > 2 {
		t.Fatalf("messages published by %v, want two nodes at most", from)
	}
	if len(heartbeats) != 8 || slices.ContainsFunc(heartbeats, func(d time.Duration) bool { return d != 300*time.Millisecond }) {
		t.Fatalf("relay heartbeats %v, want 300ms on each of 8 nodes", heartbeats)
	}
	if _, err := RunBroadcast(ctx, BroadcastScenario{N: 4, Publishers: 5}); err == nil || !strings.Contains(err.Error(), "Publishers") {
		t.Fatalf("5 publishers of 4 nodes: %v", err)
	}
}

// setup_s and topic_ready_s end when every node is in the topic: the two heartbeats the scenario then waits for
// the meshes to fill come after them (both figures held that pause).
func TestSetupFiguresLeaveOutTheMeshPause(t *testing.T) {
	checkLeaks(t)
	const hb = 300 * time.Millisecond
	var first, subscribing, publishing time.Time // when the progress lines came
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunBroadcast(ctx, BroadcastScenario{N: 6, Degree: 3, Messages: 2, Size: 64, Interval: 5 * time.Millisecond,
		Latency: time.Millisecond, Seed: 3, Heartbeat: hb, Progress: func(s string) {
			now := time.Now()
			switch {
			case first.IsZero():
				first = now // "starting 6 nodes", just after the setup's start
			case strings.HasPrefix(s, "subscribing"):
				subscribing = now
			case strings.HasPrefix(s, "publishing"):
				publishing = now
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// The pause lies between the end of the setup and the first publication; a few ms of reading the nodes too.
	const slack = 0.05
	pause := (2 * hb).Seconds()
	setup, topic := publishing.Sub(first).Seconds(), publishing.Sub(subscribing).Seconds()
	if rep.TopicReadyS <= 0 || rep.SetupS < rep.TopicReadyS || rep.SetupS+pause > setup+slack || rep.TopicReadyS+pause > topic+slack {
		t.Fatalf("setup_s %.3f s, topic_ready_s %.3f s; publishing began %.3f s after the start and %.3f s after the "+
			"subscriptions: want both figures at least the %.1f s pause before it", rep.SetupS, rep.TopicReadyS, setup, topic, pause)
	}
}

// The IHAVEs of a short window's messages go out on the heartbeats after it, and the idle network sends none:
// with After, ihave_per_delivery holds every id announced from the first publication until the nodes close (it
// held the window's alone, a fraction of them).
func TestTheFiguresHoldTheIHavesAfterTheWindow(t *testing.T) {
	checkLeaks(t)
	var first, last uint64 // the IHAVE ids sent when the publications start, and when the measurements are done
	sum := func(nodes []*actors.Node) (ids uint64) {
		for _, n := range nodes {
			st, err := n.GossipStats(context.Background())
			if err != nil {
				t.Error(err)
			}
			ids += st.Router.IHaveSent
		}
		return ids
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunBroadcast(ctx, BroadcastScenario{N: 20, Degree: 8, Messages: 10, Size: 256,
		Latency: 5 * time.Millisecond, Seed: 7, Idle: time.Second, After: 3 * time.Second, // 2 heartbeats and more
		Window: func(start bool, nodes []*actors.Node) {
			if start {
				first = sum(nodes)
			}
		},
		BeforeClose: func(nodes []*actors.Node) { last = sum(nodes) }})
	if err != nil {
		t.Fatal(err)
	}
	d := float64(rep.Deliveries)
	all := float64(last - first)
	t.Logf("%d deliveries, %.0f IHAVE ids in all; ihave_per_delivery %.2f (after the window %.2f)",
		rep.Deliveries, all, rep.IHavePerDelivery, rep.AfterIHavePerDelivery)
	if all == 0 || rep.IHavePerDelivery*d < 0.95*all || rep.IHavePerDelivery*d > all+0.5 {
		t.Fatalf("ihave_per_delivery %.2f: %.0f ids over %d deliveries, want the %.0f sent", rep.IHavePerDelivery,
			rep.IHavePerDelivery*d, rep.Deliveries, all)
	}
	if rep.AfterIHavePerDelivery <= 0 || !rep.AfterMeasured || rep.RPCsPerDelivery <= rep.ControlRPCsPerDelivery {
		t.Fatalf("after the window: %v IHAVE ids per delivery (measured %v); rpcs %v, control %v", rep.AfterIHavePerDelivery,
			rep.AfterMeasured, rep.RPCsPerDelivery, rep.ControlRPCsPerDelivery)
	}
}

func TestBroadcastDetailDelayRank(t *testing.T) {
	d := BroadcastDetail{Delays: make([]float64, MaxDelaySample), DelayCount: 5000}
	if d.DelayRank(0) != 0 || d.DelayRank(MaxDelaySample-1) != 4999 || d.DelayRank(1000) != 2501 {
		t.Errorf("ranks %d, %d, %d", d.DelayRank(0), d.DelayRank(1000), d.DelayRank(MaxDelaySample-1))
	}
	for i := 1; i < MaxDelaySample; i++ {
		if d.DelayRank(i) <= d.DelayRank(i-1) {
			t.Fatalf("rank %d not above rank %d", i, i-1)
		}
	}
	small := BroadcastDetail{Delays: make([]float64, 7), DelayCount: 7}
	for i := range 7 {
		if small.DelayRank(i) != i {
			t.Errorf("full sample: rank of %d is %d", i, small.DelayRank(i))
		}
	}
}

// With Subscribers, only that many nodes join the topic: the deliveries counted are theirs, the publishers among
// them, and they find each other although few are connected (topic discovery).
func TestRunBroadcastWithFewSubscribers(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunBroadcast(ctx, BroadcastScenario{N: 30, Degree: 3, Subscribers: 4, Messages: 5, Size: 64,
		Interval: 5 * time.Millisecond, Latency: time.Millisecond, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subscribers != 4 || rep.Published != 5 || rep.Deliveries != 5*3 || rep.DeliveryRatio != 1 {
		t.Fatalf("subscribers %d, published %d, deliveries %d (ratio %.3f): want 4, 5, 15 (each message at the 3 "+
			"other subscribers) and 1", rep.Subscribers, rep.Published, rep.Deliveries, rep.DeliveryRatio)
	}
	if rep.TopicReadyS <= 0 || rep.TopicReadyS > rep.SetupS {
		t.Fatalf("topic ready after %.2f s of a %.2f s setup", rep.TopicReadyS, rep.SetupS)
	}
	for _, sc := range []BroadcastScenario{{N: 30, Subscribers: 1}, {N: 30, Subscribers: 31}, {N: 30, Subscribers: 4, Publishers: 5}} {
		if _, err := RunBroadcast(ctx, sc); err == nil {
			t.Fatalf("%+v: no error", sc)
		}
	}
}
