package testkit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/session"
)

// BroadcastScenario configures RunBroadcast: N nodes join through the real bootstrap and discovery path, from
// node 0 and two random nodes that joined before them as bootnodes (each keeping Degree outbound connections), all subscribe to one topic, and Messages messages of
// Size bytes are published from random nodes every Interval. A field left zero takes its default (so a zero
// Interval or Latency is 100ms or 20ms: `node sim` refuses 0 for them).
type BroadcastScenario struct {
	// N is the number of nodes (default 200); Degree the outbound connections each keeps (default 8).
	N, Degree int
	// Messages is the number published (default 50), Size the payload bytes of each (default 1024), Interval the
	// gap between publications (default 100ms).
	Messages, Size int
	Interval       time.Duration
	// Transport is "mem" (default: the in-memory transport, which emulates Latency, Jitter and Loss per link) or
	// "tcp" (real sockets on 127.0.0.1, each write delivered Latency after it was made).
	Transport string
	// Latency is the one-way latency of every link (default 20ms, either transport). Jitter (extra random delay up
	// to that much) and Loss (the share of writes delayed by a retransmission) apply to the mem transport only
	// (default 0).
	Latency, Jitter time.Duration
	Loss            float64
	// Kill is the share of nodes killed (abruptly) halfway through the publications (default 0). The bootnode and
	// publishers are drawn from the survivors. KillRoot makes the kill take the root of the topic's tree (the one
	// most nodes follow, the bootnode even) in place of one of the drawn nodes: the worst case of a kill, which a
	// random kill hits now and then.
	Kill     float64
	KillRoot bool
	// ReadyTimeout bounds the wait for every node to have a mesh link on the topic (default 2m); DrainTimeout the
	// wait for deliveries after the last publication (default 10s).
	ReadyTimeout, DrainTimeout time.Duration
	// MinReady is the share of nodes that must have a place in the topic (a topic peer and a tree link) before
	// publishing starts (default 1). With less, nodes that never joined count as missed deliveries.
	MinReady float64
	// Settle is how long the network runs once every node has a mesh link and two heartbeats more (for the meshes
	// to reach their degree), before the first publication, so that the join's discovery traffic calms down
	// (default 0).
	Settle time.Duration
	// Idle, if positive, is how long the settled network's CPU and gossip RPCs (IHAVE ids, RPCs, control RPCs)
	// are measured with nothing published, after Settle and before the first publication (default 0:
	// not measured). Its CPU rate is the network's background, what the nodes spend on their own upkeep
	// (discovery's revalidation and its handshakes, heartbeats, tree reports, timers): the report splits
	// CPUUsPerDelivery by it into the background the window paid for as it ran and the marginal cost of the
	// deliveries. Its traffic rates are what After's measurement subtracts.
	Idle time.Duration
	// After, if positive with Idle, is how long the CPU and the gossip RPCs are measured once the deliveries are in,
	// for what they leave for the heartbeats that follow (their last IHAVEs): beyond the idle rates, the RPCs are
	// added to the IHAVE ids and RPCs per delivery, and the CPU reported apart
	// (BroadcastReport.AfterCPUUsPerDelivery). Default 0: not measured, and those figures leave the tail out. The
	// wire bytes are the window's alone: the bytes written after it are mostly discovery's, in bursts (refreshes,
	// liveness checks) that an idle rate does not take out (a review's finding).
	After time.Duration
	// Seed makes publishers, payloads and kills repeatable (0: random).
	Seed uint64
	// Publishers, if positive, is how many nodes publish: that many drawn at the start (a blockchain's validators,
	// say), each message from a random live one of them, or from any live node once they are all dead. 0 (the
	// default): each message from any live node.
	Publishers int
	// Subscribers, if positive, is how many nodes join the topic: that many drawn at the start (at least 2), the
	// others only part of the network (its DHT and connections). Publishers are drawn from them, and the deliveries
	// expected are theirs. With few of them, each has few topic peers among its connections, and the relays find
	// the others through the DHT (topic discovery). 0 (the default): every node.
	Subscribers int
	// Heartbeat, if positive, is every node's relay heartbeat (gossip.Config.HeartbeatInterval; default 0: the
	// relay's default). The tree's periods are counted in heartbeats, so they scale with it.
	Heartbeat time.Duration
	// Configure, if set, adjusts every node's config after the scenario's own settings.
	Configure func(i int, cfg *actors.Config)
	// Progress, if set, receives a line about each phase and, during the setup (nodes starting, subscribing and
	// joining the topic), one every 5 s about how many nodes are that far. Its calls are never concurrent.
	Progress func(string)
	// BeforeClose, if set, is called with the nodes once the measurements are done.
	BeforeClose func(nodes []*actors.Node)
	// Window, if set, is called with true when the publications start and false when the deliveries are in.
	Window func(start bool, nodes []*actors.Node)
}

func (s *BroadcastScenario) defaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.N, 200)
	def(&s.Degree, 8)
	def(&s.Messages, 50)
	def(&s.Size, 1024)
	if s.Interval == 0 {
		s.Interval = 100 * time.Millisecond
	}
	if s.Transport == "" {
		s.Transport = "mem"
	}
	if s.Latency == 0 {
		s.Latency = 20 * time.Millisecond
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 2 * time.Minute
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = 10 * time.Second
	}
	if s.MinReady == 0 {
		s.MinReady = 1
	}
	switch {
	case s.N < 2 || s.Degree < 1 || s.Messages < 1 || s.Size < 8 || s.Interval < 0:
		return errors.New("broadcast scenario: want N >= 2, Degree >= 1, Messages >= 1, Size >= 8, Interval >= 0")
	case s.Transport != "mem" && s.Transport != "tcp":
		return fmt.Errorf("broadcast scenario: transport %q: want mem or tcp", s.Transport)
	case s.Kill < 0 || s.Kill >= 1 || s.Loss < 0 || s.Loss > 1 || s.MinReady < 0 || s.MinReady > 1:
		return errors.New("broadcast scenario: want 0 <= Kill < 1, 0 <= Loss <= 1 and 0 <= MinReady <= 1")
	case s.KillRoot && s.Kill == 0:
		return errors.New("broadcast scenario: KillRoot needs a Kill share")
	case victimCount(s.N, s.Kill) > s.N-2:
		return fmt.Errorf("broadcast scenario: Kill %v kills %d of N = %d nodes: want 2 left at least (a publisher and a receiver)",
			s.Kill, victimCount(s.N, s.Kill), s.N)
	case s.Size > maxSimSize():
		return fmt.Errorf("broadcast scenario: Size %d is over the largest payload the relay publishes, %d bytes "+
			"(Gossip.MaxMessageSize less the room of its encoding)", s.Size, maxSimSize())
	case s.Latency < 0 || s.Jitter < 0 || s.Settle < 0 || s.Idle < 0 || s.After < 0 || s.Heartbeat < 0:
		return errors.New("broadcast scenario: negative latency, jitter, settle, idle or heartbeat time")
	case s.Subscribers < 0 || s.Subscribers == 1 || s.Subscribers > s.N:
		return fmt.Errorf("broadcast scenario: Subscribers = %d, want 0 (every node) or 2 to N = %d", s.Subscribers, s.N)
	case s.Publishers < 0 || s.Publishers > s.N || (s.Subscribers > 0 && s.Publishers > s.Subscribers):
		return fmt.Errorf("broadcast scenario: Publishers = %d, want 0 (any subscriber) to the subscribers (%d of N = %d)",
			s.Publishers, s.Subscribers, s.N)
	}
	return nil
}

// Check validates the scenario as RunBroadcast does, its zero fields taking their defaults.
func (s BroadcastScenario) Check() error { return s.defaults() }

// maxSimSize is the largest payload a node of the scenario publishes: the relay's limit applies to the payload
// encoded as a google.protobuf.Any of a BytesValue, 56 bytes more.
func maxSimSize() int { return actors.DefaultConfig().Gossip.MaxMessageSize - 64 }

// pause waits d, or until ctx ends (its error).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// simTopic is the topic of the broadcast scenario.
const simTopic = "sim"

// simNode is one node of a broadcast run and what it received.
type simNode struct {
	node   *actors.Node
	killer func() // abrupt failure: connections reset
	dead   atomic.Bool
	// subscribed: the node joins the topic (BroadcastScenario.Subscribers), publishes and is expected to receive.
	subscribed bool
	// recv[m] is when message m was delivered here (Unix ns), 0 if not; hops[m] its hop count.
	recv []atomic.Int64
	hops []atomic.Uint32
	dups atomic.Int64
}

// RunBroadcast runs the scenario and closes every node before returning.
func RunBroadcast(ctx context.Context, sc BroadcastScenario) (BroadcastReport, error) {
	if err := sc.defaults(); err != nil {
		return BroadcastReport{}, err
	}
	progress := func(string) {}
	if sc.Progress != nil {
		var mu sync.Mutex // the setup's reports come from another goroutine
		progress = func(s string) {
			mu.Lock()
			defer mu.Unlock()
			sc.Progress(s)
		}
	}
	seed := sc.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rep := BroadcastReport{N: sc.N, Degree: sc.Degree, Messages: sc.Messages, Size: sc.Size, Transport: sc.Transport,
		IntervalM: ms(sc.Interval)}
	hb := actors.DefaultConfig().Gossip.Router.HeartbeatInterval
	if sc.Heartbeat > 0 {
		hb = sc.Heartbeat
	}
	rep.LatencyMs, rep.Publishers, rep.HeartbeatMs = ms(sc.Latency), sc.Publishers, ms(hb)

	var mem *MemNetwork
	var tcpBytes atomic.Int64
	slotsIn, slotsOut := actors.DefaultConfig().MaxInboundPeers, actors.DefaultConfig().MaxOutboundPeers
	if sc.Transport == "mem" {
		mem = NewMemNetwork(MemConfig{Link: LinkConfig{Latency: sc.Latency, Jitter: sc.Jitter, Loss: sc.Loss}, Seed: seed})
	} else {
		slotsIn, slotsOut = connectionSlots(sc.N, actors.DefaultConfig())
	}
	sims := make([]*simNode, sc.N)
	system := actors.NewActorSystem(zerolog.Nop()) // shared: one process registry rather than one per node
	defer system.Shutdown()
	bufs := session.NewBufferPool() // shared: one reserve of buffers rather than one per node
	start := time.Now()
	progress(fmt.Sprintf("starting %d nodes over %s, each keeping %d outbound connections", sc.N, sc.Transport, sc.Degree))
	setup := startSetupProgress(progress, sc.N, start)
	defer setup.stop()
	var started []*actors.Node
	nodes, err := StartNodes(ctx, sc.N, WithBootnode(), WithStarted(func(_ int, n *actors.Node) {
		started = append(started, n)
		setup.set("started", len(started), sc.N)
	}), WithConfig(func(i int, cfg *actors.Config) {
		sims[i] = &simNode{recv: make([]atomic.Int64, sc.Messages), hops: make([]atomic.Uint32, sc.Messages)}
		cfg.Bootstrap.TargetOutbound = sc.Degree
		cfg.ActorSystem = system
		cfg.Buffers = bufs
		cfg.MaxInboundPeers, cfg.MaxOutboundPeers = max(slotsIn, 2*sc.Degree+4), max(slotsOut, sc.Degree+4)
		if i == 0 {
			// The bootnode, configured for many joining at once, as operators do.
			cfg.MaxInboundPeers = max(cfg.MaxInboundPeers, min(sc.N, 1000))
			cfg.MaxPendingHandshakes = max(cfg.MaxPendingHandshakes, 256)
		}
		if i > 2 && len(started) > 2 {
			// Besides node 0, two nodes that joined before: in a large network one bootnode is a hotspot (at
			// N = 1000, some joiners found it saturated with handshakes for minutes).
			for _, j := range rng.Perm(len(started) - 1)[:2] {
				cfg.Bootstrap.Bootnodes = append(cfg.Bootstrap.Bootnodes, started[j+1].Addr())
			}
		}
		if mem != nil {
			t := mem.NewTransport()
			cfg.Transport, sims[i].killer = t, t.Kill
		} else {
			t := &countingTransport{inner: session.TCPTransport{}, written: &tcpBytes, latency: sc.Latency}
			cfg.Transport, sims[i].killer = t, t.killAll
		}
		if sc.Heartbeat > 0 {
			cfg.Gossip.Router.HeartbeatInterval = sc.Heartbeat
		}
		if sc.Configure != nil {
			sc.Configure(i, cfg)
		}
		if i == 0 {
			g := cfg.Gossip.Router
			rep.PublishFanout, rep.Dlazy, rep.MeshGossipBeats = g.PublishFanout, g.Dlazy, g.MeshGossipBeats
		}
	}))
	defer closeAll(nodes)
	if err != nil {
		return rep, err
	}
	for i, n := range nodes {
		sims[i].node = n
	}

	members := drawSubscribers(sims, sc.Subscribers, rng)
	rep.Subscribers = len(members)
	progress(fmt.Sprintf("subscribing %d nodes and waiting for the meshes", len(members)))
	subscribing := time.Now()
	for i, n := range members {
		s := sims[slices.Index(nodes, n)]
		if _, err := n.Subscribe(ctx, simTopic, s.record); err != nil {
			return rep, fmt.Errorf("node %d subscribe: %w", i, err)
		}
		setup.set("subscribed", i+1, len(members))
	}
	setup.set("in the topic", 0, len(members))
	ready, readyAt, err := waitReady(ctx, members, sc.ReadyTimeout, sc.MinReady, sc.Subscribers > 0,
		func(n int) { setup.set("in the topic", n, len(members)) })
	rep.ReadyRatio = ready
	if err != nil {
		return rep, err
	}
	rep.SetupS = readyAt.Sub(start).Seconds()
	rep.TopicReadyS = readyAt.Sub(subscribing).Seconds()
	// Two heartbeats more, out of the setup's figures, so that the meshes reach their degree.
	if err := pause(ctx, 2*hb); err != nil {
		return rep, err
	}
	setup.stop()
	if sc.Settle > 0 {
		progress(fmt.Sprintf("letting the network settle for %v", sc.Settle))
		if err := pause(ctx, sc.Settle); err != nil {
			return rep, err
		}
	}
	var idleRate traffic // per node and second
	if sc.Idle > 0 {
		progress(fmt.Sprintf("measuring the idle network's CPU for %v", sc.Idle))
		idle0, err := relayStats(ctx, sims)
		if err != nil {
			return rep, err
		}
		cpu0, t0 := processCPU(), time.Now()
		if err := pause(ctx, sc.Idle); err != nil {
			return rep, err
		}
		cpu1, idleS := processCPU(), time.Since(t0).Seconds()
		idle1, err := relayStats(ctx, sims)
		if err != nil {
			return rep, err
		}
		w, idle, _ := windowTotals(idle0, idle1)
		nodeS := idleS * float64(len(nodes))
		rep.IdleCPUUsPerNodeS = float64((cpu1 - cpu0).Microseconds()) / nodeS
		rep.IdleRPCsPerNodeS = float64(idle.rpcs) / nodeS
		idleRate = traffic{ihave: float64(w.IHaveSent) / nodeS,
			rpcs: float64(idle.rpcs) / nodeS, controlRPCs: float64(idle.controlRPCs) / nodeS}
	}
	for _, n := range nodes {
		rep.KeptOutboundMean += float64(n.OutboundCount()) / float64(len(nodes))
	}
	before, err := relayStats(ctx, sims)
	if err != nil {
		return rep, err
	}
	if rep.TreeBefore, err = treeShape(ctx, members); err != nil {
		return rep, err
	}
	rep.TopicComponents = topicComponents(ctx, members)
	for _, st := range before {
		rep.TreeShortcutsBefore += int(st.Router.TreeShortcuts)
		rep.TopicRegistrationsBefore += int(st.Router.TopicRegistrations)
		rep.TopicSearchesBefore += int(st.Router.TopicSearches)
		rep.TopicLookupsFailedBefore += int(st.Router.TopicLookupsFailed)
	}

	progress(fmt.Sprintf("publishing %d messages of %d bytes every %v", sc.Messages, sc.Size, sc.Interval))
	killAt := -1
	if sc.Kill > 0 {
		killAt = sc.Messages / 2
	}
	if sc.Window != nil {
		sc.Window(true, nodes)
	}
	bytes0, use0, dials0, t0 := wireBytes(mem, &tcpBytes), readUsage(), dialCount(mem), time.Now()
	allocs0 := readHeapAllocs()
	ticks0, steal0 := hostTicks()
	published := make([]time.Time, sc.Messages)
	attempted := make([]time.Time, sc.Messages) // also of the failed publications
	publisher := make([]int, sc.Messages)
	var lastErr error // of the last publication that failed
	var pool []int    // the publishers, with sc.Publishers
	if sc.Publishers > 0 {
		for _, i := range rng.Perm(len(sims)) {
			if len(pool) < sc.Publishers && sims[i].subscribed {
				pool = append(pool, i)
			}
		}
	}
	tick := time.NewTicker(max(sc.Interval, time.Microsecond))
	defer tick.Stop()
	for m := range sc.Messages {
		if m == killAt {
			victims := drawVictims(sims, sc.Kill, rng)
			if sc.KillRoot {
				if victims, err = withRoot(ctx, sims, victims); err != nil {
					return rep, err
				}
			}
			rep.Killed = kill(sims, victims)
			progress(fmt.Sprintf("killed %d nodes", rep.Killed))
		}
		p := pickPublisher(sims, pool, rng)
		if p < 0 { // drawVictims spares two subscribers: not reached
			return rep, errors.New("broadcast scenario: no live subscriber left to publish from")
		}
		publisher[m] = p
		data := make([]byte, sc.Size)
		binary.BigEndian.PutUint32(data, uint32(m))
		fillRandom(data[4:], rng)
		published[m] = time.Now()
		attempted[m] = published[m]
		if _, err := sims[p].node.Publish(ctx, simTopic, wrapperspb.Bytes(data)); err != nil {
			progress(fmt.Sprintf("message %d from node %d not published: %v", m, p, err))
			published[m] = time.Time{}
			lastErr = err
		} else {
			rep.Published++
		}
		if sc.Interval > 0 && m < sc.Messages-1 {
			select {
			case <-ctx.Done():
				return rep, ctx.Err()
			case <-tick.C:
			}
		}
	}

	if rep.Published == 0 {
		return rep, fmt.Errorf("broadcast scenario: no message could be published: %w", lastErr)
	}
	progress("waiting for the last deliveries")
	_ = Poll(ctx, sc.DrainTimeout, func() bool { return allDelivered(sims, publisher, published) })
	bytes1, use1, allocs1 := wireBytes(mem, &tcpBytes), readUsage(), readHeapAllocs()
	if ticks1, steal1 := hostTicks(); ticks1 > ticks0 {
		rep.HostStealShare = float64(steal1-steal0) / float64(ticks1-ticks0)
	}
	windowS := time.Since(t0).Seconds()
	rep.Memory = memoryBreakdown()
	rep.GCCycles = int(allocs1.cycles - allocs0.cycles)
	if sc.Window != nil {
		sc.Window(false, nodes)
	}
	rep.DialsPerSecond = float64(dialCount(mem)-dials0) / time.Since(t0).Seconds()
	for _, n := range nodes {
		rep.InboundEvicted += n.Stats().InboundEvicted
	}
	after, err := relayStats(ctx, sims)
	if err != nil {
		return rep, err
	}
	tAfter := time.Now()
	var afterCPU time.Duration // the process CPU over sc.After, beyond the idle network's
	var tail traffic           // what the nodes sent from the window's end to sc.After's, beyond the idle network
	if sc.After > 0 && sc.Idle > 0 {
		rep.AfterMeasured = true
		progress(fmt.Sprintf("measuring the CPU and gossip RPCs of the %v after the deliveries", sc.After))
		c0, a0 := processCPU(), time.Now()
		if err := pause(ctx, sc.After); err != nil {
			return rep, err
		}
		idle := idleCPU(rep.IdleCPUUsPerNodeS, after, time.Since(a0))
		afterCPU = processCPU() - c0 - idle
		end, err := relayStats(ctx, sims)
		if err != nil {
			return rep, err
		}
		// Each counter's tail runs from where the window's reading of it ended, less the idle rate of the nodes
		// still alive (counted: all but the killed ones).
		w, r, counted := windowTotals(after, end)
		relayNodeS := float64(counted) * time.Since(tAfter).Seconds()
		tail = traffic{
			// At least 0: with few deliveries the idle rate's noise outweighs the tail (a review saw negative RPCs
			// per delivery at one message); with many, the tree reports' even rate leaves it small.
			ihave:       max(0, float64(w.IHaveSent)-idleRate.ihave*relayNodeS),
			rpcs:        max(0, float64(r.rpcs)-idleRate.rpcs*relayNodeS),
			controlRPCs: max(0, float64(r.controlRPCs)-idleRate.controlRPCs*relayNodeS),
		}
	}
	window, relay, counted := windowTotals(before, after)
	if rep.TreeAfter, err = treeShape(ctx, liveSubscribers(sims)); err != nil {
		return rep, err
	}
	rep.TreeShortcutsWindow = int(window.TreeShortcuts)
	summarize(&rep, sims, publisher, published)
	rep.Detail = detail(sims, publisher, published, attempted)
	rep.Detail.Seed = seed
	if rep.Deliveries > 0 {
		d := float64(rep.Deliveries)
		rep.WireBytesPerDelivery = float64(bytes1-bytes0) / d
		cpu := use1.cpu() - use0.cpu()
		rep.CPUUsPerDelivery = float64(cpu.Microseconds()) / d
		if cpu > 0 {
			rep.SystemCPUShare = float64(use1.system-use0.system) / float64(cpu)
		}
		rep.ParksPerDelivery = float64(use1.voluntary-use0.voluntary) / d
		rep.PreemptionsPerDelivery = float64(use1.preempted-use0.preempted) / d
		if sc.Idle > 0 {
			rep.BackgroundCPUUsPerDelivery, rep.MarginalCPUUsPerDelivery = splitCPU(rep.IdleCPUUsPerNodeS, sc.N, windowS,
				rep.CPUUsPerDelivery, d)
		}
		if sc.After > 0 && sc.Idle > 0 {
			rep.AfterCPUUsPerDelivery = float64(afterCPU.Microseconds()) / d
		}
		rep.AllocBytesPerDelivery = float64(allocs1.bytes-allocs0.bytes) / d
		rep.AllocsPerDelivery = float64(allocs1.objects-allocs0.objects) / d
		// The killed nodes' counters die with them: these count the survivors' (windowTotals).
		rep.DupPerDelivery = float64(window.Duplicates) / d
		rep.IHavePerDelivery = (float64(window.IHaveSent) + tail.ihave) / d
		rep.AfterIHavePerDelivery = tail.ihave / d
		rep.IWantPerDelivery = float64(window.IWantSent) / d
		rep.VerifiedPerDelivery = float64(relay.verified) / d
		rep.BeaconsCheckedPerDelivery = float64(window.TreeBeaconsChecked) / d
		rep.RPCsPerDelivery = (float64(relay.rpcs) + tail.rpcs) / d
		rep.ControlRPCsPerDelivery = (float64(relay.controlRPCs) + tail.controlRPCs) / d
		rep.TreeReportsPerDelivery = float64(window.TreeReports) / d
		rep.TreeMovesPerNode = float64(window.TreeMoves) / float64(max(counted, 1))
		rep.TreeDamped = int(window.TreeDamped)
		rep.TreeCutsPerNode = float64(window.TreeCuts) / float64(max(counted, 1))
		rep.TreeCrossedPerDelivery = float64(window.TreeCrossed) / d
		rep.TreeDistrusted = int(window.TreeDistrusted)
		rep.TreeShunned = int(window.TreeShunned)
	}
	if sc.BeforeClose != nil {
		sc.BeforeClose(nodes)
	}
	rep.PeakRSSMiB = peakRSSMiB()
	rep.PeakRSSPerNodeMiB = rep.PeakRSSMiB / float64(sc.N)
	return rep, nil
}

// record is the subscription handler of a simulated node.
func (s *simNode) record(d *gossip.Delivery) {
	b, ok := d.Payload.(*wrapperspb.BytesValue)
	if !ok || len(b.Value) < 4 {
		return
	}
	m := int(binary.BigEndian.Uint32(b.Value))
	if m >= len(s.recv) {
		return
	}
	if !s.recv[m].CompareAndSwap(0, d.ReceivedAt.UnixNano()) {
		s.dups.Add(1)
		return
	}
	s.hops[m].Store(d.Hops)
}

func closeAll(nodes []*actors.Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Close() }()
	}
	wg.Wait()
}

// relayStats reads the relay counters of the live nodes; a dead node's entry is nil.
func relayStats(ctx context.Context, sims []*simNode) ([]*gossip.RelayStats, error) {
	out := make([]*gossip.RelayStats, len(sims))
	for i, s := range sims {
		if s.dead.Load() {
			continue
		}
		st, err := s.node.GossipStats(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = &st
	}
	return out, nil
}

// idleCPU is the CPU the idle network costs over d at usPerNodeS, counting the nodes alive (whose relays answered
// stats, non-nil): after a kill, all N made the after-window figure read low.
func idleCPU(usPerNodeS float64, stats []*gossip.RelayStats, d time.Duration) time.Duration {
	live := 0
	for _, st := range stats {
		if st != nil {
			live++
		}
	}
	return time.Duration(usPerNodeS*float64(live)*d.Seconds()) * time.Microsecond
}

// windowTotals sums what the counters the report uses gained between before and after, over the nodes alive at
// both ends, and returns their number. A killed node's counters die with it: its share of the window is left out,
// rather than its counts before the window being taken from the survivors'.
func windowTotals(before, after []*gossip.RelayStats) (t gossip.Stats, relay relayTotals, nodes int) {
	for i, ra := range after {
		rb := before[i]
		if ra == nil || rb == nil {
			continue
		}
		nodes++
		relay.verified += ra.Verified - rb.Verified
		relay.rpcs += ra.RPCsSent - rb.RPCsSent
		relay.controlRPCs += ra.ControlRPCsSent - rb.ControlRPCsSent
		a, b := &ra.Router, &rb.Router
		t.Duplicates += a.Duplicates - b.Duplicates
		t.IHaveSent += a.IHaveSent - b.IHaveSent
		t.IWantSent += a.IWantSent - b.IWantSent
		t.TreeReports += a.TreeReports - b.TreeReports
		t.TreeMoves += a.TreeMoves - b.TreeMoves
		t.TreeDamped += a.TreeDamped - b.TreeDamped
		t.TreeCuts += a.TreeCuts - b.TreeCuts
		t.TreeCrossed += a.TreeCrossed - b.TreeCrossed
		t.TreeDistrusted += a.TreeDistrusted - b.TreeDistrusted
		t.TreeShunned += a.TreeShunned - b.TreeShunned
		t.TreeShortcuts += a.TreeShortcuts - b.TreeShortcuts
		t.TreeBeaconsChecked += a.TreeBeaconsChecked - b.TreeBeaconsChecked
	}
	return t, relay, nodes
}

// traffic is what the nodes sent, in the units of the figures the report extends past the window by what the
// deliveries left for the heartbeats after it (BroadcastScenario.After): IHAVE ids, gossip RPCs and those of them
// that carried no message.
type traffic struct{ ihave, rpcs, controlRPCs float64 }

// relayTotals are the relay's own counters (gossip.RelayStats) that windowTotals sums.
type relayTotals struct{ verified, rpcs, controlRPCs uint64 }

// treeShape reads the spanning tree of the nodes' topic: the roots they follow and the longest route.
func treeShape(ctx context.Context, nodes []*actors.Node) (TreeShape, error) {
	roots := map[session.NodeID]bool{}
	var sh TreeShape
	for _, n := range nodes {
		info, err := n.Topic(ctx, simTopic)
		if err != nil {
			return sh, err
		}
		roots[info.Root] = true
		sh.Depth = max(sh.Depth, info.Dist)
	}
	sh.Roots = len(roots)
	return sh, nil
}

func fillRandom(b []byte, rng *rand.Rand) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
}

// expected tells whether node i should receive message m: it is subscribed, alive and not the publisher.
func expected(sims []*simNode, i, m int, publisher []int) bool {
	return i != publisher[m] && sims[i].subscribed && !sims[i].dead.Load()
}

func allDelivered(sims []*simNode, publisher []int, published []time.Time) bool {
	for m := range published {
		if published[m].IsZero() {
			continue
		}
		for i, s := range sims {
			if expected(sims, i, m, publisher) && s.recv[m].Load() == 0 {
				return false
			}
		}
	}
	return true
}

func dialCount(mem *MemNetwork) int64 {
	if mem == nil {
		return 0
	}
	return mem.Dials()
}

func wireBytes(mem *MemNetwork, tcp *atomic.Int64) int64 {
	if mem != nil {
		return mem.BytesWritten()
	}
	return tcp.Load()
}

// splitCPU splits the window's CPU per delivery into the background (the idle network's rate, in µs per node-second,
// paid by n nodes over windowS seconds, spread over the deliveries) and the marginal cost of the deliveries. It
// counts the background of the n nodes started: a kill lowers it for the rest of the window, so it is an upper
// bound then.
func splitCPU(idleUsPerNodeS float64, n int, windowS, cpuUsPerDelivery, deliveries float64) (background, marginal float64) {
	background = idleUsPerNodeS * float64(n) * windowS / deliveries
	return background, cpuUsPerDelivery - background
}
