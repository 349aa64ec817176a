package testkit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// DiscoveryScenario configures RunDiscovery: N nodes on 127.0.0.1 join from one bootnode (node 0) through the real
// bootstrap path, then random lookups are measured. A field left zero takes its default.
type DiscoveryScenario struct {
	// N is the number of nodes (default 200).
	N int
	// Lookups is how many lookups of random nodes from random nodes are measured after convergence (default 500);
	// Workers run them in parallel (default 8).
	Lookups, Workers int
	// Fraction is the share of its true k closest nodes each table must hold to count as converged (default 0.95).
	Fraction float64
	// ConvergeTimeout bounds the wait for convergence (default 2m); lookups run after it either way.
	ConvergeTimeout time.Duration
	// Seed makes the choice of lookups repeatable (0: random).
	Seed uint64
	// Transport is "tcp" (default: sockets on 127.0.0.1, connection limits shrunk to fit the open-file limit) or
	// "mem" (the in-memory transport with Latency per link, which lifts the file limit).
	Transport string
	Latency   time.Duration
	// Configure, if set, adjusts every node's config (after the scenario's own settings).
	Configure func(i int, cfg *actors.Config)
	// Progress, if set, receives a line about each phase.
	Progress func(string)
	// BeforeClose, if set, is called with the live nodes once the measurements are done (to take a heap profile,
	// for instance).
	BeforeClose func(nodes []*actors.Node)
}

// DiscoveryReport holds the figures of a RunDiscovery run. Durations are in seconds or milliseconds as named.
type DiscoveryReport struct {
	N         int    `json:"n"`
	Transport string `json:"transport"`
	K         int    `json:"k"`
	Alpha     int    `json:"alpha"`
	// MaxInbound and MaxOutbound are the nodes' connection limits (shrunk to fit the open-file limit).
	MaxInbound  int `json:"max_inbound"`
	MaxOutbound int `json:"max_outbound"`
	// SetupS is the time to start every node; ConvergeS the time from the first start until every table held
	// Fraction of its true k closest (-1: not within ConvergeTimeout).
	SetupS    float64 `json:"setup_s"`
	ConvergeS float64 `json:"converge_s"`
	Converged bool    `json:"converged"`
	// KeptOutboundMin and KeptOutboundMean count the outbound connections the nodes keep (target 8), after the
	// convergence wait.
	KeptOutboundMin  int     `json:"kept_outbound_min"`
	KeptOutboundMean float64 `json:"kept_outbound_mean"`
	// MinClosestShare is the smallest share of its true k closest any table held at the end of the wait.
	MinClosestShare float64 `json:"min_closest_share"`
	Lookups         int     `json:"lookups"`
	// LookupSuccess is the share of lookups that returned the right address.
	LookupSuccess float64 `json:"lookup_success"`
	LatencyP50Ms  float64 `json:"lookup_p50_ms"`
	LatencyP99Ms  float64 `json:"lookup_p99_ms"`
	// Hops are the lookups' rounds (the depth of the deepest node asked); HopsBound is ceil(log2(N)/2)+1.
	HopsP50   int `json:"hops_p50"`
	HopsP99   int `json:"hops_p99"`
	HopsMax   int `json:"hops_max"`
	HopsBound int `json:"hops_bound"`
	// RequestsPerLookup is the mean number of FindNode requests a lookup sent (each is answered by one NODES).
	RequestsPerLookup float64 `json:"requests_per_lookup"`
	// PeakRSSMiB is the process's peak resident memory; per node it is divided by N.
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	PeakRSSPerNodeMiB float64 `json:"peak_rss_per_node_mib"`
	// CPUS is the process CPU time (user+system) of the whole run.
	CPUS float64 `json:"cpu_s"`
	// DialsToConverge counts the connections dialed (each a handshake when it succeeds) from the first start until
	// convergence or its timeout (mem transport only): the main cost of joining.
	DialsToConverge int64 `json:"dials_to_converge"`
	// Evictions and LookupEvictions sum, over the nodes, the routing table entries removed after failed liveness
	// checks and after failed lookup requests (routing.Stats), from the first start until the convergence wait
	// ended: under a loaded join, honest nodes that answer late are among them.
	Evictions       uint64 `json:"evictions"`
	LookupEvictions uint64 `json:"lookup_evictions"`
}

func (s *DiscoveryScenario) defaults() error {
	if s.N == 0 {
		s.N = 200
	}
	if s.Lookups == 0 {
		s.Lookups = 500
	}
	if s.Workers == 0 {
		s.Workers = 8
	}
	if s.Fraction == 0 {
		s.Fraction = 0.95
	}
	if s.ConvergeTimeout == 0 {
		s.ConvergeTimeout = 2 * time.Minute
	}
	if s.Transport == "" {
		s.Transport = "tcp"
	}
	if s.N < 2 || s.Lookups < 0 || s.Workers < 1 || s.Fraction <= 0 || s.Fraction > 1 || s.ConvergeTimeout < 0 {
		return errors.New("discovery scenario: want N >= 2, Lookups >= 0, Workers >= 1, 0 < Fraction <= 1")
	}
	if s.Transport != "tcp" && s.Transport != "mem" || s.Latency < 0 || s.Latency > 0 && s.Transport != "mem" {
		return errors.New("discovery scenario: want transport tcp or mem, and a latency (mem only) >= 0")
	}
	return nil
}

// RunDiscovery runs the scenario and closes every node before returning.
func RunDiscovery(ctx context.Context, sc DiscoveryScenario) (DiscoveryReport, error) {
	if err := sc.defaults(); err != nil {
		return DiscoveryReport{}, err
	}
	progress := sc.Progress
	if progress == nil {
		progress = func(string) {}
	}
	def := actors.DefaultConfig()
	rep := DiscoveryReport{N: sc.N, K: def.Routing.Table.K, Alpha: def.Routing.Alpha,
		HopsBound: int(math.Ceil(math.Log2(float64(sc.N))/2)) + 1}
	cpu0 := processCPU()
	start := time.Now()
	slotsIn, slotsOut := connectionSlots(sc.N, def)
	var mem *MemNetwork
	if sc.Transport == "mem" {
		slotsIn, slotsOut = def.MaxInboundPeers, def.MaxOutboundPeers
		mem = NewMemNetwork(MemConfig{Link: LinkConfig{Latency: sc.Latency}, Seed: sc.Seed})
	}
	rep.Transport = sc.Transport
	system := actors.NewActorSystem(zerolog.Nop()) // shared: one process registry rather than one per node
	defer system.Shutdown()
	bufs := session.NewBufferPool() // shared: one reserve of buffers rather than one per node
	rep.MaxInbound, rep.MaxOutbound = slotsIn, slotsOut
	progress(fmt.Sprintf("starting %d nodes (%d inbound, %d outbound connections each at most)", sc.N, slotsIn, slotsOut))
	nodes, err := StartNodes(ctx, sc.N, WithBootnode(), WithConfig(func(i int, cfg *actors.Config) {
		cfg.MaxInboundPeers, cfg.MaxOutboundPeers = slotsIn, slotsOut
		cfg.ActorSystem = system
		cfg.Buffers = bufs
		if mem != nil {
			cfg.Transport = mem.NewTransport()
		}
		if i == 0 {
			// The bootnode, configured for many joining at once, as operators do.
			cfg.MaxInboundPeers = max(slotsIn, sc.N) // within the budget: connectionSlots keeps 3 descriptors per node spare
		}
		if sc.Configure != nil {
			sc.Configure(i, cfg)
		}
	}))
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); _ = n.Close() }()
		}
		wg.Wait()
	}()
	if err != nil {
		return rep, err
	}
	rep.SetupS = time.Since(start).Seconds()

	progress("waiting for the routing tables to converge")
	truth := trueClosest(nodes, rep.K)
	need := int(math.Ceil(sc.Fraction * float64(rep.K)))
	wait, cancel := context.WithTimeout(ctx, sc.ConvergeTimeout)
	defer cancel()
	// Each check copies every node's table: checked every 250 ms, the copies take a few percent of the CPU.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		share, ok := closestShare(ctx, nodes, truth, need)
		rep.MinClosestShare = share

		if ok {
			rep.Converged, rep.ConvergeS = true, time.Since(start).Seconds()
			break
		}
		select {
		case <-wait.Done():
		case <-tick.C:
			continue
		}
		rep.ConvergeS = -1
		break
	}
	rep.DialsToConverge = dialCount(mem)
	rep.Evictions, rep.LookupEvictions = tableEvictions(ctx, nodes)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	rep.KeptOutboundMin = math.MaxInt
	for _, n := range nodes {
		c := n.OutboundCount()
		rep.KeptOutboundMin = min(rep.KeptOutboundMin, c)
		rep.KeptOutboundMean += float64(c) / float64(len(nodes))
	}
	progress(fmt.Sprintf("running %d lookups", sc.Lookups))
	lr := runLookups(ctx, nodes, sc)
	rep.Lookups = len(lr)
	if len(lr) > 0 {
		var lat []time.Duration
		var hops []int
		ok, reqs := 0, 0
		for _, r := range lr {
			reqs += r.requests
			if r.ok {
				ok++
				lat = append(lat, r.latency)
				hops = append(hops, r.hops)
			}
		}
		rep.LookupSuccess = float64(ok) / float64(len(lr))
		rep.RequestsPerLookup = float64(reqs) / float64(len(lr))
		slices.Sort(lat)
		slices.Sort(hops)
		if len(lat) > 0 {
			rep.LatencyP50Ms = ms(percentile(lat, 0.50))
			rep.LatencyP99Ms = ms(percentile(lat, 0.99))
			rep.HopsP50, rep.HopsP99, rep.HopsMax = percentile(hops, 0.50), percentile(hops, 0.99), hops[len(hops)-1]
		}
	}
	if sc.BeforeClose != nil {
		sc.BeforeClose(nodes)
	}
	rep.PeakRSSMiB = peakRSSMiB()
	rep.PeakRSSPerNodeMiB = rep.PeakRSSMiB / float64(sc.N)
	rep.CPUS = (processCPU() - cpu0).Seconds()
	return rep, nil
}

// connectionSlots returns the inbound and outbound limits of the simulated nodes: the defaults, shrunk when the
// process's open-file limit cannot hold every node's connections (each costs a descriptor at both ends).
func connectionSlots(n int, def actors.Config) (in, out int) {
	in, out = def.MaxInboundPeers, def.MaxOutboundPeers
	limit := raiseFileLimit()
	if limit == 0 {
		return in, out
	}
	// Descriptors left per node after the listeners, the bootnode's extra inbound and some slack.
	budget := (int(limit) - 3*n - 1000) / n
	if budget >= in+out {
		return in, out
	}
	out = max(def.Bootstrap.TargetOutbound+4, budget*2/5)
	in = max(def.Bootstrap.TargetOutbound, budget-out)
	return in, out
}

// trueClosest returns, for each node, the ids of the k other nodes closest to it.
func trueClosest(nodes []*actors.Node, k int) []map[session.NodeID]bool {
	out := make([]map[session.NodeID]bool, len(nodes))
	ids := make([]session.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID()
	}
	for i, n := range nodes {
		self := routing.KeyOf(n.ID())
		others := slices.DeleteFunc(slices.Clone(ids), func(id session.NodeID) bool { return id == n.ID() })
		slices.SortFunc(others, func(a, b session.NodeID) int { return routing.DistCmp(self, routing.KeyOf(a), routing.KeyOf(b)) })
		out[i] = make(map[session.NodeID]bool, k)
		for _, id := range others[:min(k, len(others))] {
			out[i][id] = true
		}
	}
	return out
}

// closestShare returns the smallest share of its true closest that any table holds, and whether every table holds
// at least need of them.
func closestShare(ctx context.Context, nodes []*actors.Node, truth []map[session.NodeID]bool, need int) (float64, bool) {
	minShare, all := 1.0, true
	for i, n := range nodes {
		s, err := n.RoutingTable(ctx)
		if err != nil {
			return 0, false
		}
		held := 0
		for _, e := range s.Entries {
			if truth[i][e.ID] {
				held++
			}
		}
		want := min(need, len(truth[i]))
		all = all && held >= want
		if len(truth[i]) > 0 {
			minShare = min(minShare, float64(held)/float64(len(truth[i])))
		}
	}
	return minShare, all
}

// tableEvictions sums the nodes' routing.Stats.Evictions and LookupEvictions (a node whose table cannot be read
// adds nothing).
func tableEvictions(ctx context.Context, nodes []*actors.Node) (evictions, lookupEvictions uint64) {
	for _, n := range nodes {
		if s, err := n.RoutingTable(ctx); err == nil {
			evictions += s.Stats.Evictions
			lookupEvictions += s.Stats.LookupEvictions
		}
	}
	return evictions, lookupEvictions
}

type lookupOutcome struct {
	ok       bool
	latency  time.Duration
	hops     int
	requests int
}

// runLookups looks up random nodes from random nodes, Workers at a time.
func runLookups(ctx context.Context, nodes []*actors.Node, sc DiscoveryScenario) []lookupOutcome {
	seed := sc.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	type pair struct{ from, to int }
	pairs := make(chan pair, sc.Lookups)
	for range sc.Lookups {
		from := rng.IntN(len(nodes))
		to := rng.IntN(len(nodes) - 1)
		if to >= from {
			to++
		}
		pairs <- pair{from, to}
	}
	close(pairs)
	var (
		mu  sync.Mutex
		out []lookupOutcome
		wg  sync.WaitGroup
	)
	for range sc.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range pairs {
				if ctx.Err() != nil {
					return
				}
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				addr, res, err := nodes[p.from].LookupWithStats(lctx, nodes[p.to].ID())
				o := lookupOutcome{latency: time.Since(t0), hops: res.Rounds, requests: res.Queried}
				cancel()
				o.ok = err == nil && addr == nodes[p.to].Addr()
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func percentile[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
