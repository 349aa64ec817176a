// Command gossipsubsim runs node sim's broadcast scenario on go-libp2p gossipsub, in this process and on the same
// emulated links as node sim (its in-memory transport, or with -transport tcp loopback sockets whose every write
// reaches the socket -latency after it was made), and prints the same figures, so that the two stacks can be
// measured side by side in the same hour of the same host. It is a module of its own so that actormesh's go.mod carries none of go-libp2p's dependencies.
//
//	cd testkit/gossipsubsim && go run . -n 200 -degree 8 -messages 50 -size 1024 -interval 100ms -latency 20ms -json
//
// With -compare, it runs the scenario for each of -seeds on gossipsub and then on actormesh's node sim, each run in
// a process of its own, and prints both runs' figures and the ratio of their CPU per delivery:
//
//	go build -o /tmp/node ./cmd/node && cd testkit/gossipsubsim && go run . -compare /tmp/node -seeds 7-12
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/actormesh/actormesh/testkit"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// scenario is what a run does; its flags are node sim's.
type scenario struct {
	n, degree, messages, size int
	publishers                int
	interval, latency         time.Duration
	settle, idle, drain       time.Duration
	after                     time.Duration
	timeout                   time.Duration
	seed                      uint64
	cpuProfile                string
	transport                 string
}

// report carries node sim's figures under node sim's JSON names.
type report struct {
	Stack          string  `json:"stack"`
	N              int     `json:"n"`
	Degree         int     `json:"degree"`
	Messages       int     `json:"messages"`
	Size           int     `json:"size"`
	IntervalMs     float64 `json:"interval_ms"`
	LatencyMs      float64 `json:"latency_ms"`
	Transport      string  `json:"transport"`
	Publishers     int     `json:"publishers"`
	Published      int     `json:"published"`
	DeliveryRatio  float64 `json:"delivery_ratio"`
	P50Ms          float64 `json:"p50_ms"`
	P90Ms          float64 `json:"p90_ms"`
	P99Ms          float64 `json:"p99_ms"`
	P100Ms         float64 `json:"p100_ms"`
	Deliveries     int64   `json:"deliveries"`
	DupPerDelivery float64 `json:"dup_per_delivery"`
	// WireBytesPerDelivery counts the bytes written to the links over the window, as node sim's does: the IHAVEs
	// the last messages leave for the heartbeats after it are not in it (nor in node sim's).
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
	CPUUsPerDelivery     float64 `json:"cpu_us_per_delivery"`
	IdleCPUUsPerNodeS    float64 `json:"idle_cpu_us_per_node_s"`
	BackgroundCPUUs      float64 `json:"background_cpu_us_per_delivery"`
	MarginalCPUUs        float64 `json:"marginal_cpu_us_per_delivery"`
	// AfterCPUUs is the CPU of the -after time once the deliveries are in, beyond the idle rate, per delivery: the
	// deliveries' work left for the heartbeats after the window (node sim's after_cpu_us_per_delivery).
	AfterCPUUs         float64 `json:"after_cpu_us_per_delivery,omitempty"`
	AllocBytesPerDeliv float64 `json:"alloc_bytes_per_delivery"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	PeakRSSPerNodeMiB  float64 `json:"peak_rss_per_node_mib"`
	// SetupS is the time from the first host's creation until every node knew a topic peer and had had a mesh
	// link (polled every few ms), node sim's setup_s: neither holds the settle, nor node sim's two heartbeats after.
	SetupS     float64 `json:"setup_s"`
	DialErrors int64   `json:"dial_errors"` // of the dials made at setup, those that failed
	Goroutines int     `json:"goroutines"`
}

func main() {
	var sc scenario
	var asJSON bool
	flag.IntVar(&sc.n, "n", 200, "number of nodes")
	flag.IntVar(&sc.degree, "degree", 8, "connections each node dials")
	flag.IntVar(&sc.messages, "messages", 50, "messages published")
	flag.IntVar(&sc.size, "size", 1024, "payload bytes per message")
	flag.DurationVar(&sc.interval, "interval", 100*time.Millisecond, "gap between publications")
	flag.DurationVar(&sc.latency, "latency", 20*time.Millisecond, "one-way latency of every link")
	flag.DurationVar(&sc.settle, "settle", 15*time.Second, "time the network runs after every node has a topic peer and a mesh link, before the idle measurement")
	flag.DurationVar(&sc.idle, "idle", 5*time.Second, "time the settled network's CPU is measured with nothing published (0: not measured)")
	flag.DurationVar(&sc.after, "after", 3*time.Second, "time the CPU is measured once the deliveries are in, with -idle: beyond the idle rate, the deliveries' work left for the heartbeats after the window, reported apart (0: not measured); as node sim's -after, whose default it is")
	flag.DurationVar(&sc.drain, "drain", 3*time.Second, "longest wait after the last publication for its deliveries")
	flag.DurationVar(&sc.timeout, "timeout", 2*time.Minute, "longest wait for every node to have a topic peer and a mesh link")
	flag.Uint64Var(&sc.seed, "seed", 0, "seed of the dials and publishers (0: random)")
	flag.IntVar(&sc.publishers, "publishers", 0, "publish from this many nodes drawn at the start, each message from a random one of them (0: from any node)")
	flag.StringVar(&sc.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured window to this file")
	flag.StringVar(&sc.transport, "transport", "mem", "mem (node sim's in-memory links) or tcp (sockets on 127.0.0.1 whose every write reaches the socket -latency after it was made)")
	flag.BoolVar(&asJSON, "json", false, "print one JSON object")
	var node, seeds, nodeArgs string
	var runTimeout time.Duration
	flag.StringVar(&node, "compare", "", "path of actormesh's node binary (go build -o /tmp/node ./cmd/node): run the scenario for each of -seeds on gossipsub and then on actormesh (node sim), each in a process of its own, and print both runs' figures and the ratio of their CPU per delivery")
	flag.StringVar(&seeds, "seeds", "7-12", "with -compare: the seeds, as 7-12 or 7,9,11")
	flag.StringVar(&nodeArgs, "node-args", "", "with -compare: more flags for node sim, as \"--settle 10s\"")
	flag.DurationVar(&runTimeout, "run-timeout", 10*time.Minute, "with -compare: longest time one run may take")
	flag.Parse()
	if sc.n < 2 || sc.degree < 1 || sc.messages < 1 || sc.size < 16 || sc.interval <= 0 || sc.latency < 0 ||
		sc.transport != "mem" && sc.transport != "tcp" || sc.publishers < 0 || sc.publishers > sc.n {
		fmt.Fprintln(os.Stderr, "gossipsubsim: need -n >= 2, -degree >= 1, -messages >= 1, -size >= 16, -interval > 0, -latency >= 0, -transport mem or tcp, 0 <= -publishers <= -n")
		os.Exit(2)
	}
	if node != "" {
		os.Exit(runCompare(sc, node, seeds, nodeArgs, runTimeout, asJSON))
	}
	if sc.seed == 0 {
		sc.seed = rand.Uint64()
	}
	rep, err := run(context.Background(), sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gossipsubsim:", err)
		os.Exit(1)
	}
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
		return
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
}

// node is one libp2p host with its gossipsub topic and subscription.
type node struct {
	host    host.Host
	topic   *pubsub.Topic
	sub     *pubsub.Subscription
	grafted atomic.Bool // the router has added a peer to its mesh
}

// tracer counts the duplicates a node's router drops, and tells when it adds a first peer to its mesh.
type tracer struct {
	pubsub.RawTracer
	dups    *atomic.Int64
	grafted *atomic.Bool
}

func (t tracer) DuplicateMessage(*pubsub.Message) { t.dups.Add(1) }
func (t tracer) Graft(peer.ID, string)            { t.grafted.Store(true) }

// noTracer implements pubsub.RawTracer with no effect; tracer overrides what it counts.
type noTracer struct{}

func (noTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (noTracer) OnClosedOutboundStream(peer.ID)                       {}
func (noTracer) Join(string)                                          {}
func (noTracer) Leave(string)                                         {}
func (noTracer) Graft(peer.ID, string)                                {}
func (noTracer) Prune(peer.ID, string)                                {}
func (noTracer) ValidateMessage(*pubsub.Message)                      {}
func (noTracer) DeliverMessage(*pubsub.Message)                       {}
func (noTracer) RejectMessage(*pubsub.Message, string)                {}
func (noTracer) DuplicateMessage(*pubsub.Message)                     {}
func (noTracer) ThrottlePeer(peer.ID)                                 {}
func (noTracer) RecvRPC(*pubsub.RPC)                                  {}
func (noTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (noTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (noTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (noTracer) UndeliverableMessage(*pubsub.Message)                 {}

const topicName = "sim"

func run(ctx context.Context, sc scenario) (report, error) {
	rep := report{Stack: "go-libp2p-pubsub v0.19.0 (gossipsub defaults), go-libp2p v0.51.0 (its defaults: TLS 1.3 before Noise, yamux)",
		N: sc.n, Degree: sc.degree, Messages: sc.messages, Size: sc.size,
		IntervalMs: ms(sc.interval), LatencyMs: ms(sc.latency), Transport: sc.transport, Publishers: sc.publishers}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rng := rand.New(rand.NewPCG(sc.seed, 0x9e3779b97f4a7c15))
	var dups atomic.Int64
	var written func() int64 // bytes written to the links so far
	var nodeLinks func() links
	if sc.transport == "mem" {
		mem := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: sc.latency}, Seed: sc.seed})
		written, nodeLinks = mem.BytesWritten, func() links { return memLinks(mem) }
	} else {
		var tcpWritten atomic.Int64
		written, nodeLinks = tcpWritten.Load, func() links { return tcpLinks(sc.latency, &tcpWritten) }
	}
	start := time.Now()
	nodes := make([]*node, 0, sc.n)
	defer func() {
		for _, nd := range nodes {
			nd.sub.Cancel()
			_ = nd.host.Close()
		}
	}()
	for range sc.n {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(newLinkTransport(nodeLinks)),
			libp2p.DisableRelay(),
		)
		if err != nil {
			return rep, fmt.Errorf("host: %w", err)
		}
		nd := &node{host: h}
		ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(tracer{RawTracer: noTracer{}, dups: &dups, grafted: &nd.grafted}))
		if err != nil {
			_ = h.Close()
			return rep, fmt.Errorf("gossipsub: %w", err)
		}
		t, err := ps.Join(topicName)
		if err != nil {
			_ = h.Close()
			return rep, err
		}
		sub, err := t.Subscribe()
		if err != nil {
			_ = h.Close()
			return rep, err
		}
		nd.topic, nd.sub = t, sub
		nodes = append(nodes, nd)
	}
	// Each node dials degree others drawn at random, a few at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var dialErrors atomic.Int64
	for i, nd := range nodes {
		for _, j := range rng.Perm(sc.n)[:min(sc.n-1, sc.degree+1)] {
			if j == i {
				continue
			}
			info := peer.AddrInfo{ID: nodes[j].host.ID(), Addrs: nodes[j].host.Addrs()}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				defer dcancel()
				if err := nd.host.Connect(dctx, info); err != nil {
					dialErrors.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if err := testkit.Poll(ctx, sc.timeout, func() bool { return allInMesh(nodes) }); err != nil {
		return rep, errors.New("not every node had a topic peer and a mesh link before -timeout")
	}
	rep.SetupS, rep.DialErrors = time.Since(start).Seconds(), dialErrors.Load()
	time.Sleep(sc.settle) // the network runs: meshes form over heartbeats

	// The idle network's CPU: the same split as node sim's.
	if sc.idle > 0 {
		c0, t0 := testkit.ProcessCPU(), time.Now()
		time.Sleep(sc.idle)
		idleCPU, idleS := testkit.ProcessCPU()-c0, time.Since(t0).Seconds()
		rep.IdleCPUUsPerNodeS = float64(idleCPU.Microseconds()) / float64(sc.n) / idleS
	}

	// Receivers: each node records when it first took each message.
	got := make([][]time.Duration, sc.messages) // per message, delays at the receivers
	var mu sync.Mutex
	var deliveries atomic.Int64
	var rwg sync.WaitGroup
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	for _, nd := range nodes {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				m, err := nd.sub.Next(rctx)
				if err != nil {
					return
				}
				if m.ReceivedFrom == nd.host.ID() || len(m.Data) < 16 {
					continue // its own publication
				}
				at := time.Now()
				idx := int(binary.BigEndian.Uint64(m.Data))
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data[8:])))
				if idx < 0 || idx >= sc.messages {
					continue
				}
				deliveries.Add(1)
				mu.Lock()
				got[idx] = append(got[idx], at.Sub(sent))
				mu.Unlock()
			}
		}()
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if sc.cpuProfile != "" {
		f, err := os.Create(sc.cpuProfile)
		if err != nil {
			return rep, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return rep, err
		}
	}
	w0, d0, cpu0, t0 := written(), dups.Load(), testkit.ProcessCPU(), time.Now()
	var pool []int // the publishers, with -publishers
	if sc.publishers > 0 {
		pool = rng.Perm(sc.n)[:sc.publishers]
	}
	tick := time.NewTicker(sc.interval)
	for i := range sc.messages {
		if i > 0 {
			<-tick.C
		}
		payload := make([]byte, sc.size)
		binary.BigEndian.PutUint64(payload, uint64(i))
		binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
		pub := nodes[rng.IntN(sc.n)]
		if len(pool) > 0 {
			pub = nodes[pool[rng.IntN(len(pool))]]
		}
		if err := pub.topic.Publish(ctx, payload); err != nil {
			tick.Stop()
			return rep, fmt.Errorf("publish %d: %w", i, err)
		}
		rep.Published++
	}
	tick.Stop()
	want := int64(sc.messages) * int64(sc.n-1)
	end := time.Now().Add(sc.drain)
	for deliveries.Load() < want && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	window := time.Since(t0)
	cpu := testkit.ProcessCPU() - cpu0
	w1, d1 := written(), dups.Load()
	if sc.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	var afterCPU time.Duration // the CPU of sc.after, beyond the idle network's
	if sc.after > 0 && sc.idle > 0 {
		c0, a0 := testkit.ProcessCPU(), time.Now()
		time.Sleep(sc.after) // the network runs: the last messages' IHAVEs go out on the next heartbeats
		idle := time.Duration(rep.IdleCPUUsPerNodeS*float64(sc.n)*time.Since(a0).Seconds()) * time.Microsecond
		afterCPU = testkit.ProcessCPU() - c0 - idle
	}
	runtime.ReadMemStats(&ms1)
	rep.Goroutines = runtime.NumGoroutine()
	rcancel()
	rwg.Wait()

	dl := deliveries.Load()
	rep.Deliveries = dl
	rep.DeliveryRatio = float64(dl) / float64(want)
	if dl > 0 {
		rep.DupPerDelivery = float64(d1-d0) / float64(dl)
		rep.WireBytesPerDelivery = float64(w1-w0) / float64(dl)
		rep.CPUUsPerDelivery = float64(cpu.Microseconds()) / float64(dl)
		rep.BackgroundCPUUs = rep.IdleCPUUsPerNodeS * float64(sc.n) * window.Seconds() / float64(dl)
		rep.MarginalCPUUs = rep.CPUUsPerDelivery - rep.BackgroundCPUUs
		if sc.after > 0 && sc.idle > 0 {
			rep.AfterCPUUs = float64(afterCPU.Microseconds()) / float64(dl)
		}
		rep.AllocBytesPerDeliv = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(dl)
	}
	rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.P100Ms = quantiles(got, sc.n-1)
	rep.PeakRSSMiB = peakRSSMiB()
	rep.PeakRSSPerNodeMiB = rep.PeakRSSMiB / float64(sc.n)
	return rep, nil
}

// allInMesh tells whether every node knows a peer in the topic and has had a mesh link: node sim's readiness
// (a topic peer and a mesh or tree link), without its spanning tree.
func allInMesh(nodes []*node) bool {
	for _, nd := range nodes {
		if !nd.grafted.Load() || len(nd.topic.ListPeers()) == 0 {
			return false
		}
	}
	return true
}

// quantiles returns, as node sim does (testkit.MedianMs), the median over messages of the delay until 50, 90, 99
// and 100 % of the other nodes had each message, or -1 when the median message never reached that share (with an
// even number of messages, when either middle one did not).
func quantiles(got [][]time.Duration, others int) (p50, p90, p99, p100 float64) {
	at := func(share float64) float64 {
		per := make([]float64, 0, len(got))
		for _, d := range got {
			s := slices.Clone(d)
			slices.Sort(s)
			v := math.Inf(1)
			if need := int(math.Ceil(share * float64(others))); need <= len(s) {
				v = ms(s[max(0, need-1)])
			}
			per = append(per, v)
		}
		return testkit.MedianMs(per)
	}
	return at(0.5), at(0.9), at(0.99), at(1)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}
