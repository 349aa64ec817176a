package testkit

import (
	"math"
	"slices"
	"time"
)

// BroadcastReport holds the figures of a RunBroadcast run. pXX_ms is the median over messages of the delay until
// XX% of the other live nodes received the message (MedianMs: with an even number of messages, the mean of the
// two middle ones), -1 when the median message never reached that share (with an even number, either middle one).
type BroadcastReport struct {
	N         int     `json:"n"`
	Degree    int     `json:"degree"`
	Messages  int     `json:"messages"`
	Size      int     `json:"size"`
	IntervalM float64 `json:"interval_ms"`
	LatencyMs float64 `json:"latency_ms"`
	Transport string  `json:"transport"`
	// Subscribers is how many nodes joined the topic (BroadcastScenario.Subscribers: all by default); the
	// deliveries, and the delays to X% of the nodes, are theirs.
	Subscribers int `json:"subscribers"`
	// Publishers is how many nodes published (BroadcastScenario.Publishers; 0: any subscriber) and HeartbeatMs the
	// relays' heartbeat.
	Publishers  int     `json:"publishers"`
	HeartbeatMs float64 `json:"heartbeat_ms"`
	// PublishFanout, Dlazy and MeshGossipBeats are the relays' gossip settings (gossip.Config), as the first node
	// had them after BroadcastScenario.Configure: what a run trades p50, duplicates and control messages by.
	PublishFanout   int `json:"publish_fanout"`
	Dlazy           int `json:"dlazy"`
	MeshGossipBeats int `json:"mesh_gossip_beats"`
	Killed          int `json:"killed"`
	// Published counts the publications that succeeded (a failed one is a lost message: it counts as delivered
	// to nobody).
	Published int `json:"published"`
	// DeliveryRatio is the share of (message, live node other than its publisher) pairs delivered.
	DeliveryRatio float64 `json:"delivery_ratio"`
	P50Ms         float64 `json:"p50_ms"`
	P90Ms         float64 `json:"p90_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P100Ms        float64 `json:"p100_ms"`
	// SlowMessages counts the messages whose p100 was more than twice the median p100 (or that some live node
	// never received): those a broken tree link made wait for the lazy repair (IHAVE/IWANT), as after a kill. The
	// median hides them while they are fewer than half.
	SlowMessages int `json:"slow_messages"`
	// Deliveries counts messages handed to subscribers of nodes other than the publisher.
	Deliveries int `json:"deliveries"`
	// HandlerDuplicates counts handler calls for a message the handler had already seen (must be 0).
	HandlerDuplicates int `json:"handler_duplicates"`
	// DupPerDelivery: payload copies received beyond the first, per delivery. This and the other router counts
	// below (IHAVE, IWANT, tree reports, moves, damped changes, shortcuts in the window) are those of the nodes
	// alive at the window's end: a killed node's counters die with it.
	DupPerDelivery float64 `json:"dup_per_delivery"`
	// IHavePerDelivery and IWantPerDelivery count announced and requested ids per delivery. The IHAVEs of the
	// window's last messages go out on the heartbeats after it: IHavePerDelivery holds them, as measured over
	// BroadcastScenario.After beyond the idle network's rate (AfterIHavePerDelivery), and leaves them out when
	// Idle or After is 0.
	IHavePerDelivery float64 `json:"ihave_per_delivery"`
	IWantPerDelivery float64 `json:"iwant_per_delivery"`
	// VerifiedPerDelivery counts the origin signatures checked per delivery: 1 when every node checks each
	// message once, on its first copy (duplicates are not checked); 0 with verification off.
	VerifiedPerDelivery float64 `json:"verified_per_delivery"`
	// BeaconsCheckedPerDelivery counts the roots' beacon signatures checked per delivery (gossip.Stats
	// .TreeBeaconsChecked): about one per root, node and heartbeat, whatever the traffic.
	BeaconsCheckedPerDelivery float64 `json:"beacons_checked_per_delivery"`
	// RPCsPerDelivery is the gossip RPCs the surviving nodes sent over the window (gossip.RelayStats.RPCsSent), per
	// delivery, and ControlRPCsPerDelivery those that carried no message: the others carried the messages, about one
	// per delivery (a duplicate is one more). Both hold the RPCs sent after the window beyond the idle rate, as
	// IHavePerDelivery does (the IHAVEs' RPCs), and leave them out when Idle or After is 0. After the signature checks (VerifiedPerDelivery), what
	// the CPU per delivery scales with, and, unlike CPU time, not moved by the host's load: read a change in CPU
	// that is smaller than the runs' noise by them.
	RPCsPerDelivery        float64 `json:"rpcs_per_delivery"`
	ControlRPCsPerDelivery float64 `json:"control_rpcs_per_delivery"`
	// MeanHops and MaxHops describe the paths of deliveries.
	MeanHops float64 `json:"mean_hops"`
	MaxHops  int     `json:"max_hops"`
	// TreeBefore and TreeAfter are the topic's spanning tree when the publications start and after the last
	// delivery (Config.Tree): one root is a settled tree.
	TreeBefore TreeShape `json:"tree_before"`
	TreeAfter  TreeShape `json:"tree_after"`
	// TopicComponents is the number of connected components of the graph the members' topic peers made when
	// publishing started: 1 unless the members formed islands, whose messages cannot reach each other.
	TopicComponents int `json:"topic_components"`
	// TreeReportsPerDelivery is the tree reports sent during the publications per delivery.
	TreeReportsPerDelivery float64 `json:"tree_reports_per_delivery"`
	// TreeMovesPerNode is the changes of place in the tree per surviving node during the publications (a settled tree:
	// ~0; a repair after a kill: a few), TreeDamped those of them held for the next heartbeat by the damping of
	// nodes whose place kept changing.
	TreeMovesPerNode float64 `json:"tree_moves_per_node"`
	TreeDamped       int     `json:"tree_damped"`
	// TreeCutsPerNode is the broken tree links (gossip.TreeCut) per surviving node it found or heard of during the
	// publications: ~0 on a settled network; after a kill, about the links it cut.
	TreeCutsPerNode float64 `json:"tree_cuts_per_node"`
	// TreeCrossedPerDelivery is the copies per delivery pushed to peers in another root's tree
	// (gossip.Stats.TreeCrossed): 0 on a settled network; after the root's death, while the survivors move to the
	// new one.
	TreeCrossedPerDelivery float64 `json:"tree_crossed_per_delivery"`
	// TreeDistrusted counts the roots the surviving nodes gave up during the publications because most messages
	// came repaired (gossip.Stats.TreeDistrusted): 0 unless a root withholds messages.
	TreeDistrusted int `json:"tree_distrusted"`
	// TreeShunned counts the parents the surviving nodes left during the publications because most messages came
	// repaired while the parent was not the root (gossip.Stats.TreeShunned): 0 unless a node withholds messages.
	TreeShunned int `json:"tree_shunned"`
	// TreeShortcutsBefore and TreeShortcutsWindow count the shortcut connections asked for
	// (gossip.Config.TreeShortcutDist) before the publications and during them.
	TreeShortcutsBefore int `json:"tree_shortcuts_before"`
	TreeShortcutsWindow int `json:"tree_shortcuts_window"`
	// TopicRegistrationsBefore, TopicSearchesBefore and TopicLookupsFailedBefore count the topic discovery lookups
	// the nodes asked for before the publications (gossip.Stats.TopicRegistrations, TopicSearches,
	// TopicLookupsFailed), over all nodes: 0 while every node is a member and well connected.
	TopicRegistrationsBefore int `json:"topic_registrations_before"`
	TopicSearchesBefore      int `json:"topic_searches_before"`
	TopicLookupsFailedBefore int `json:"topic_lookups_failed_before"`
	// WireBytesPerDelivery counts every byte written to connections from the first publication to the end of the
	// drain (handshakes of the setup excluded; keepalives and gossip control included), per delivery. The IHAVEs
	// the last messages leave for the heartbeats after it are not counted (AfterIHavePerDelivery ids, tens of
	// bytes per delivery): the bytes written then are mostly discovery's, in bursts no idle rate takes out.
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
	// AfterIHavePerDelivery is the part of IHavePerDelivery sent over BroadcastScenario.After, beyond what the idle
	// network sent in that time: what the deliveries left for the heartbeats after the window. Absent when not
	// measured.
	AfterIHavePerDelivery float64 `json:"after_ihave_per_delivery,omitempty"`
	// AfterMeasured tells whether the time after the window was measured (BroadcastScenario.After and Idle): the
	// After figures are then measured ones, zero or not.
	AfterMeasured bool `json:"-"`
	// CPUUsPerDelivery is the process CPU time over the window alone, per delivery: the CPU after it
	// (AfterCPUUsPerDelivery) is not added, as at the default N = 200 and 50 messages it is a few µs and mostly
	// noise (the idle rate's, and where a garbage collection falls); on small runs it can exceed the window's.
	CPUUsPerDelivery float64 `json:"cpu_us_per_delivery"`
	// SystemCPUShare is the part of that CPU time spent in the kernel (system calls: sockets, and the futexes and
	// epoll waits of threads parking and waking). ParksPerDelivery counts the process's voluntary context
	// switches in the window per delivery: a thread giving up its core for want of work, each one a later wake-up.
	// PreemptionsPerDelivery counts the involuntary ones (the host taking the core back).
	SystemCPUShare         float64 `json:"system_cpu_share"`
	ParksPerDelivery       float64 `json:"parks_per_delivery"`
	PreemptionsPerDelivery float64 `json:"preemptions_per_delivery"`
	// HostStealShare is the share of the machine's CPU time the hypervisor gave to others in the window while
	// this machine's virtual CPUs wanted to run (/proc/stat's steal; 0 on bare metal or where unreadable): a busy
	// host, whose neighbours also slow this one's memory and caches, so that the CPU figures read higher.
	HostStealShare float64 `json:"host_steal_share"`
	// IdleCPUUsPerNodeS is the process CPU per node and second while the settled network ran with nothing published
	// (BroadcastScenario.Idle): the nodes' upkeep. BackgroundCPUUsPerDelivery is that rate over the publication
	// window, per delivery, and MarginalCPUUsPerDelivery the rest of CPUUsPerDelivery: what the deliveries
	// themselves cost. The background is paid per second, so its share per delivery falls as the message rate
	// rises. The three are absent when the idle network was not measured; like every CPU figure here they vary
	// by about 10 % between runs, more over short windows.
	IdleCPUUsPerNodeS          float64 `json:"idle_cpu_us_per_node_s,omitempty"`
	BackgroundCPUUsPerDelivery float64 `json:"background_cpu_us_per_delivery,omitempty"`
	MarginalCPUUsPerDelivery   float64 `json:"marginal_cpu_us_per_delivery,omitempty"`
	// AfterCPUUsPerDelivery is what the deliveries cost after the window (BroadcastScenario.After): the process CPU
	// over that time beyond the idle network's rate, per delivery (not in CPUUsPerDelivery). The window ends with
	// the last delivery, but the IHAVE announcements of the last second's messages go out on the heartbeats after
	// it. Absent when the idle network or the time after was not measured; it moves with where a garbage
	// collection falls (~8 µs each).
	AfterCPUUsPerDelivery float64 `json:"after_cpu_us_per_delivery,omitempty"`
	// IdleRPCsPerNodeS is the gossip RPCs each node sent per second in the same idle period (tree reports, on a
	// settled network): what most of the upkeep scales with. Absent too when the idle network was not measured.
	IdleRPCsPerNodeS float64 `json:"idle_rpcs_per_node_s,omitempty"`
	// AllocBytesPerDelivery and AllocsPerDelivery are the heap allocations of the process over the same window
	// (bytes and objects) per delivery, and GCCycles the garbage collections in it: what drives the GC's share of
	// the CPU.
	AllocBytesPerDelivery float64 `json:"alloc_bytes_per_delivery"`
	AllocsPerDelivery     float64 `json:"allocs_per_delivery"`
	GCCycles              int     `json:"gc_cycles"`
	// PeakRSSMiB is the process's peak resident memory, also divided by N.
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	PeakRSSPerNodeMiB float64 `json:"peak_rss_per_node_mib"`
	// Memory is where the process's memory was when the measured window ended, to read PeakRSSMiB by.
	Memory MemoryBreakdown `json:"memory"`
	// SetupS is the time from the first node's start until every node had a mesh link on the topic (the instant
	// it was first seen; with MinReady below 1, until ReadyTimeout when some never had one); TopicReadyS the part
	// of it from the first subscription on (with few Subscribers, the time they took to find each other). Neither
	// holds the two heartbeats RunBroadcast then waits for the meshes to reach their degree (before stop 53 both did).
	SetupS      float64 `json:"setup_s"`
	TopicReadyS float64 `json:"topic_ready_s"`
	// DialsPerSecond is the rate of dials (each a handshake when it succeeds) over the measured window (mem
	// transport only): discovery's background traffic, which competes with the broadcast for CPU.
	DialsPerSecond float64 `json:"dials_per_s"`
	// ReadyRatio is the share of nodes that had a place in the topic when publishing started.
	ReadyRatio float64 `json:"ready_ratio"`
	// KeptOutboundMean is the mean number of kept outbound connections when publishing started.
	KeptOutboundMean float64 `json:"kept_outbound_mean"`
	// InboundEvicted counts the inbound connections the nodes closed to make room for a newcomer (a full node's
	// eviction), from the start of the run to the end of the measured window.
	InboundEvicted uint64 `json:"inbound_evicted"`
	// Detail holds the raw measurements behind these figures, for plots (set when RunBroadcast succeeds). It is
	// not part of the JSON object.
	Detail *BroadcastDetail `json:"-"`
}

// MaxDelaySample bounds BroadcastDetail.Delays, the sample of all deliveries' delays.
const MaxDelaySample = 2000

// BroadcastDetail is the raw data of a RunBroadcast run: per message, when it was published and the delay of each
// delivery, plus the delays and hop counts of all deliveries. Its size grows with N x Messages (one float64 per
// delivery: 50,000 of them, 400 KB, for 1000 nodes and 50 messages); the global delay sample is capped at
// MaxDelaySample values.
type BroadcastDetail struct {
	// Seed is the seed the run used (drawn at random when the scenario's was 0): with the same scenario, it
	// repeats the publishers, payloads and kills.
	Seed uint64 `json:"seed"`
	// Messages has one entry per message, in publication order.
	Messages []MessageDetail `json:"messages"`
	// Delays is a sample of the delays (ms) of all deliveries, sorted ascending: Delays[i] is the delay of rank
	// DelayRank(i) among the DelayCount deliveries (counted from 0). All of them when there are at most
	// MaxDelaySample, else MaxDelaySample of them at evenly spaced ranks, the first and last included.
	Delays []float64 `json:"delays_ms"`
	// DelayCount is the number of deliveries Delays is drawn from (BroadcastReport.Deliveries).
	DelayCount int `json:"delay_count"`
	// Hops maps a hop count to the number of deliveries that took that many hops.
	Hops map[int]int `json:"hops"`
}

// DelayRank returns the rank, among all DelayCount delays sorted ascending, of the sample value Delays[i].
func (d *BroadcastDetail) DelayRank(i int) int {
	return sampleRank(i, len(d.Delays), d.DelayCount)
}

// MessageDetail is what happened to one message of a broadcast run.
type MessageDetail struct {
	// Publisher is the index of the node that published it.
	Publisher int `json:"publisher"`
	// Published is false when the publication failed (the message then reached nobody).
	Published bool `json:"published"`
	// AtMs is when it was published, in ms since the first publication.
	AtMs float64 `json:"at_ms"`
	// Expected is the number of receivers it should have reached: the nodes alive at the end, other than its
	// publisher.
	Expected int `json:"expected"`
	// Delays are the delays (ms from publication) of its deliveries to those receivers, sorted ascending: the
	// share of receivers reached after Delays[k] ms is (k+1)/Expected.
	Delays []float64 `json:"delays_ms"`
}

// summarize computes the delivery ratio, the delay percentiles and the hop figures.
func summarize(rep *BroadcastReport, sims []*simNode, publisher []int, published []time.Time) {
	var want, got, hopSum int
	pct := map[float64][]float64{0.5: nil, 0.9: nil, 0.99: nil, 1: nil}
	for m := range published {
		var delays []float64
		n := 0
		for i, s := range sims {
			if !expected(sims, i, m, publisher) {
				continue
			}
			n++
			at := s.recv[m].Load()
			if at == 0 || published[m].IsZero() {
				continue
			}
			delays = append(delays, float64(at-published[m].UnixNano())/1e6)
			h := int(s.hops[m].Load())
			hopSum += h
			rep.MaxHops = max(rep.MaxHops, h)
		}
		want += n
		got += len(delays)
		if n == 0 { // no live node but its publisher was to receive it: it measures nothing
			continue
		}
		slices.Sort(delays)
		for p := range pct {
			need := int(math.Ceil(p * float64(n)))
			v := math.Inf(1)
			if need <= len(delays) {
				v = delays[max(0, need-1)]
			}
			pct[p] = append(pct[p], v)
		}
	}
	for _, s := range sims {
		rep.HandlerDuplicates += int(s.dups.Load())
	}
	rep.Deliveries = got
	if want > 0 {
		rep.DeliveryRatio = float64(got) / float64(want)
	}
	if got > 0 {
		rep.MeanHops = float64(hopSum) / float64(got)
	}
	rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.P100Ms = MedianMs(pct[0.5]), MedianMs(pct[0.9]), MedianMs(pct[0.99]), MedianMs(pct[1])
	for _, v := range pct[1] {
		// A message some live node never received is slow, even when the median one is (P100Ms -1).
		if math.IsInf(v, 1) || rep.P100Ms > 0 && v > 2*rep.P100Ms {
			rep.SlowMessages++
		}
	}
}

// MedianMs returns the median of the per-message delays v (ms, +Inf for a message that never reached the share
// measured), rounded to 0.01 ms: the middle value, or with an even count the mean of the two middle ones. It
// returns -1 when v is empty or the median is never reached (with an even count, when either middle value is
// +Inf). v is not modified.
func MedianMs(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Sorted(slices.Values(v))
	lo, hi := s[(len(s)-1)/2], s[len(s)/2]
	if math.IsInf(hi, 1) { // hi >= lo: either is never
		return -1
	}
	return math.Round((lo+hi)/2*100) / 100
}

// detail collects the raw data of the run, counting deliveries as summarize does: to the nodes alive at the end,
// other than the publisher, of the messages whose publication succeeded.
func detail(sims []*simNode, publisher []int, published, attempted []time.Time) *BroadcastDetail {
	d := &BroadcastDetail{Messages: make([]MessageDetail, len(published)), Hops: map[int]int{}}
	var all []float64
	for m := range published {
		md := MessageDetail{Publisher: publisher[m], Published: !published[m].IsZero()}
		if !attempted[m].IsZero() && !attempted[0].IsZero() {
			md.AtMs = float64(attempted[m].Sub(attempted[0]).Nanoseconds()) / 1e6
		}
		for i, s := range sims {
			if !expected(sims, i, m, publisher) {
				continue
			}
			md.Expected++
			at := s.recv[m].Load()
			if at == 0 || !md.Published {
				continue
			}
			md.Delays = append(md.Delays, float64(at-published[m].UnixNano())/1e6)
			d.Hops[int(s.hops[m].Load())]++
		}
		slices.Sort(md.Delays)
		all = append(all, md.Delays...)
		d.Messages[m] = md
	}
	slices.Sort(all)
	d.DelayCount = len(all)
	d.Delays = make([]float64, min(len(all), MaxDelaySample))
	for i := range d.Delays {
		d.Delays[i] = all[d.DelayRank(i)]
	}
	return d
}

// sampleRank is the rank (from 0) among total sorted values of the i-th of k values taken at evenly spaced ranks,
// the first and the last included.
func sampleRank(i, k, total int) int {
	if k <= 1 || k >= total {
		return i
	}
	return int(math.Round(float64(i) * float64(total-1) / float64(k-1)))
}

// TreeShape is the shape of a topic's spanning tree over the nodes: how many roots they follow (1 once settled) and
// the longest route to a root.
type TreeShape struct {
	Roots int `json:"roots"`
	Depth int `json:"depth"`
}
