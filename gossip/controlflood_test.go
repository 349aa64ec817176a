package gossip

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// What a peer's control costs the relay, whose one goroutine every peer shares: a hostile peer sends the largest
// control the relay reads, at the rate its limits let through.

// floodTopics is the number of topics the node of the flood benchmarks joins: MaxPeerTopics, so that each
// topic-naming entry an RPC may carry names a joined topic (the costliest).
const floodTopics = 64

// floodAttacker is the hostile peer of the flood benchmarks and tests, one of floodPeers subscribed peers.
const (
	floodPeers    = 32
	floodAttacker = floodPeers
)

// marshalNetwork is a Network that encodes each RPC sent into a reused buffer, as the node's does on the relay's
// goroutine, and counts them.
type marshalNetwork struct {
	flakyNetwork
	buf  []byte
	sent int
}

func (m *marshalNetwork) SendNow(_ session.NodeID, _ string, msg proto.Message, _ bool) error {
	var err error
	m.buf, err = proto.MarshalOptions{}.MarshalAppend(m.buf[:0], msg)
	m.sent++
	return err
}

// floodTopic names the flood benchmarks' topic i.
func floodTopic(i int) string { return fmt.Sprint("topic-", i) }

// floodShell returns a relay shell (testShell) with the default configuration, joined to floodTopics topics with
// floodPeers peers subscribed to all of them, the peers' message rate limit the default one.
func floodShell(tb testing.TB, now time.Time) *relayActor {
	tb.Helper()
	return floodShellOf(tb, now, DefaultRelayConfig())
}

// verifyingFloodShell is floodShell checking the roots' signatures of the beacons in tree reports, as a relay does
// with VerifySignatures (Config.TreeVerify).
func verifyingFloodShell(tb testing.TB, now time.Time) *relayActor {
	tb.Helper()
	cfg := DefaultRelayConfig()
	cfg.Router.TreeSign, cfg.Router.TreeVerify = func([]byte) []byte { return make([]byte, 64) }, true
	return floodShellOf(tb, now, cfg)
}

// floodShellOf is floodShell with cfg.
func floodShellOf(tb testing.TB, now time.Time, cfg RelayConfig) *relayActor {
	tb.Helper()
	cfg.Router.Self = nid(1000)
	r := newTestRouter(tb, cfg.Router)
	for i := range floodTopics {
		addPeers(tb, r, floodTopic(i), 1, floodPeers)
		r.Join(now, floodTopic(i))
	}
	a := testShell(cfg, r, &marshalNetwork{flakyNetwork: flakyNetwork{self: nid(1000), peer: nid(floodAttacker)}},
		cfg.PeerMessageRate, cfg.PeerMessageBurst)
	for i := 1; i <= floodPeers; i++ {
		a.peers[nid(i)] = true
	}
	a.heartbeat(now)
	return a
}

// heartbeat does what the relay's heartbeat tick does to the Router and the deferred subscriptions.
func (a *relayActor) heartbeat(now time.Time) {
	a.echoAgain()
	a.applyDeferred(now)
	a.apply(a.router.Heartbeat(now))
}

// floodIDs returns n message ids of a counter's, from first.
func floodIDs(first, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		id := make([]byte, MsgIDSize)
		id[0], id[1], id[2], id[3], id[MsgIDSize-1] = byte(first+i), byte((first+i)>>8), byte((first+i)>>16), byte((first+i)>>24), 0xf1
		out[i] = id
	}
	return out
}

// floodRPCs returns the worst-case control RPCs of each kind a hostile peer can send, by kind: several of some,
// used in turn (iwant-cached is made by the benchmark, from the messages it publishes).
func floodRPCs() map[string][]*messages.GossipRPC {
	kinds := make(map[string][]*messages.GossipRPC)
	// IHAVE: one announcement of MaxIHaveLength unseen ids, and an RPC full of them (~950 KB, 56 topics).
	for k := range 64 {
		kinds["ihave-500"] = append(kinds["ihave-500"], &messages.GossipRPC{Control: &messages.GossipControl{
			Ihave: []*messages.GossipIHave{{Topic: floodTopic(k % floodTopics), Ids: floodIDs(k*500, 500)}}}})
	}
	for k := range 4 {
		c := &messages.GossipControl{}
		for j := range 56 {
			c.Ihave = append(c.Ihave, &messages.GossipIHave{Topic: floodTopic(j), Ids: floodIDs((k*56+j)*500, 500)})
		}
		kinds["ihave-full"] = append(kinds["ihave-full"], &messages.GossipRPC{Control: c})
	}
	// IWANT of MaxIHaveLength ids the node does not have.
	kinds["iwant-uncached"] = []*messages.GossipRPC{{Control: &messages.GossipControl{Iwant: floodIDs(1<<20, 500)}}}
	// PRUNE then GRAFT of every joined topic: the node leaves the peer's mesh links, backs off, and answers the
	// grafts with PRUNE.
	c := &messages.GossipControl{}
	for i := range floodTopics {
		c.Prune = append(c.Prune, &messages.GossipPrune{Topic: floodTopic(i)})
		c.Graft = append(c.Graft, floodTopic(i))
	}
	kinds["prune-graft"] = []*messages.GossipRPC{{Control: c}}
	// Tree reports: one per joined topic, each moving the peer, with the longest path and the most cuts read.
	for k := range 2 {
		c := &messages.GossipControl{}
		for j := range floodTopics {
			wt := &messages.GossipTree{Topic: floodTopic(j), Root: nid(200 + k).Bytes(), Dist: uint32(1 + k), Seq: 1}
			for x := range maxTreePath {
				wt.Path = append(wt.Path, uint32(x+1))
			}
			for x := range maxTreeCuts {
				wt.Cuts = append(wt.Cuts, &messages.GossipTreeCut{Parent: uint32(1000 + x + k*1000), Child: uint32(x), Ttl: 14})
			}
			c.Tree = append(c.Tree, wt)
		}
		kinds["tree"] = append(kinds["tree"], &messages.GossipRPC{Control: c})
	}
	// Subscriptions: the peer leaves every joined topic, then joins them again.
	for k := range 2 {
		rpc := &messages.GossipRPC{}
		for i := range floodTopics {
			rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: floodTopic(i), Subscribe: k == 1})
		}
		kinds["subscriptions"] = append(kinds["subscriptions"], rpc)
	}
	// A hello listing every joined topic: it is answered once a heartbeat.
	hello := &messages.GossipRPC{Hello: true, Subscriptions: kinds["subscriptions"][1].Subscriptions}
	kinds["hello"] = []*messages.GossipRPC{hello}
	// The longest lists the decoder takes (maxRPCSubs): twice MaxPeerTopics topics the node has not joined, read in
	// full, then topics looked up among the joined ones: in a hello, the node's topics last; in subscriptions,
	// leaving and joining each of the node's topics, again and again (MaxPeerTopics of them read).
	long := func(hello bool) *messages.GossipRPC {
		rpc := &messages.GossipRPC{Hello: hello}
		const maxRPCSubs = 8192 // messages.gossipdecode.go
		for i := range maxRPCSubs {
			s := &messages.GossipSubscription{Topic: fmt.Sprint("other-", i), Subscribe: true}
			switch {
			case i < 2*floodTopics:
			case hello && i >= maxRPCSubs-floodTopics:
				s.Topic = floodTopic(i % floodTopics)
			case !hello && i%2 == 0:
				s.Topic, s.Subscribe = floodTopic(i/2%floodTopics), i%4 == 0
			}
			rpc.Subscriptions = append(rpc.Subscriptions, s)
		}
		return rpc
	}
	kinds["hello-long"] = []*messages.GossipRPC{long(true)}
	kinds["subscriptions-long"] = []*messages.GossipRPC{long(false)}
	// What an honest peer's heartbeat sends on one topic: an IHAVE of a few ids and a tree report.
	kinds["small"] = []*messages.GossipRPC{{Control: &messages.GossipControl{
		Ihave: []*messages.GossipIHave{{Topic: floodTopic(0), Ids: floodIDs(1<<22, 4)}},
		Tree: []*messages.GossipTree{{Topic: floodTopic(0), Root: nid(1000).Bytes(), Dist: 1, Seq: 1,
			Path: []uint32{pathID(nid(1000)), 1}}}}}}
	return kinds
}

// BenchmarkControlFlood measures the relay's work per control RPC of each kind a hostile peer sends at
// floodRate RPCs a second, the rate its message limit let through before the control budget, through the
// path a decoded RPC takes (handleRPCAt), on a simulated clock with a heartbeat each second. relay-ms/s is the
// relay's CPU time per second such a peer takes (4 peers at 250 hold the relay's goroutine); controls/s is
// the RPCs whose control the relay processed, per second. tree-signed is a peer's made-up beacons, signed, in a
// relay that checks them (beaconFloodRPCs: the first 8 RPCs of each second, 64 reports each, each calling for a
// check; the others empty): 31-54 ms a second before the checks were paid from the control budget, ~6 after, on a
// loaded 2-core machine (a check ~90 µs there; 10 simulated seconds, the first's burst included).
func BenchmarkControlFlood(b *testing.B) {
	const floodRate = 2000
	rpcs := floodRPCs()
	kinds := []string{"small", "ihave-500", "ihave-full", "iwant-cached", "iwant-uncached", "prune-graft", "tree",
		"tree-signed", "subscriptions", "hello", "hello-long", "subscriptions-long"}
	roots := floodRoots(b, maxBeaconChecksPerBeat)
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			now := time.Now()
			a := floodShell(b, now)
			if kind == "tree-signed" {
				a = verifyingFloodShell(b, now)
			}
			a.clock = func() time.Time { return now }
			list := rpcs[kind]
			var signed []*messages.GossipRPC // tree-signed: this second's
			sign := func() { signed = beaconFloodRPCs(roots, a.router.beaconAt(now)) }
			if kind == "tree-signed" {
				sign()
				list = []*messages.GossipRPC{{}}
			}
			cached := func() { // the ids of MaxIHaveLength messages published now, which the peer asks for
				rpc := &messages.GossipRPC{Control: &messages.GossipControl{}}
				for i := range 500 {
					m := &Message{Topic: floodTopic(0), Data: fmt.Appendf(nil, "m %d %d", now.UnixNano(), i), Origin: nid(1000),
						OriginTime: now.UnixNano()}
					if _, err := a.router.Publish(now, m); err != nil {
						b.Fatal(err)
					}
					rpc.Control.Iwant = append(rpc.Control.Iwant, m.ID[:])
				}
				list = []*messages.GossipRPC{rpc}
			}
			if kind == "iwant-cached" {
				cached()
			}
			limited := a.stats.RateLimitedControl
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				now = now.Add(time.Second / floodRate)
				if j := i % floodRate; j < len(signed) {
					a.handleRPC(nid(floodAttacker), signed[j])
				} else {
					a.handleRPC(nid(floodAttacker), list[i%len(list)])
				}
				i++
				if i%floodRate == 0 {
					a.heartbeat(now)
					switch kind {
					case "iwant-cached":
						b.StopTimer()
						cached()
						b.StartTimer()
					case "tree-signed":
						b.StopTimer()
						sign()
						b.StartTimer()
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i)*floodRate/1e6, "relay-ms/s")
			b.ReportMetric(float64(uint64(i)-(a.stats.RateLimitedControl-limited))/float64(i)*floodRate, "controls/s")
		})
	}
}

// controlMeter counts, in a simulation, the control each node sends each peer per second: RPCs carrying control
// (one per peer and Output, as the relay sends them) and their controlCost.
type controlMeter struct {
	enc       rpcEncoder
	cfg       Config
	second    map[[3]int]float64 // (from, to, second) → cost
	rpcs      map[[3]int]int
	peakCost  float64
	peakRPCs  int
	totalCost float64
	totalRPCs int
}

func newControlMeter(cfg Config) *controlMeter {
	return &controlMeter{cfg: cfg, second: make(map[[3]int]float64), rpcs: make(map[[3]int]int)}
}

// observe counts what node i sends in out at now.
func (m *controlMeter) observe(s *sim, i int, out *Output) {
	sec := int(s.now / time.Second)
	done := map[session.NodeID]bool{}
	for k, snd := range out.Send {
		if snd.Control == nil || done[snd.To] {
			continue
		}
		done[snd.To] = true
		rpc := m.enc.begin()
		for _, o := range out.Send[k:] {
			if o.To == snd.To && o.Control != nil {
				m.enc.addControl(o.Control)
			}
		}
		cost := controlCost(rpc, m.cfg.MaxIHaveLength, m.cfg.MaxPeerTopics)
		m.enc.end()
		key := [3]int{i, s.index[snd.To], sec}
		m.second[key] += cost
		m.rpcs[key]++
		m.peakCost, m.peakRPCs = max(m.peakCost, m.second[key]), max(m.peakRPCs, m.rpcs[key])
		m.totalCost += cost
		m.totalRPCs++
	}
}

// The control an honest node sends a peer stays far within the peer control budget: in simulations of the relay's
// Router configuration with the tree forming from scratch, 20 % of the nodes killed with the root, and messages
// at 5 and 100 a second, no node sent any peer in any second a tenth of RelayConfig.PeerControlRate, nor an RPC
// of a tenth of PeerControlBurst.
func TestSimulationHonestControlFitsThePeerControlBudget(t *testing.T) {
	rc := DefaultRelayConfig()
	for _, interval := range []time.Duration{200 * time.Millisecond, 10 * time.Millisecond} {
		sc := defaultSim()
		sc.cfg = rc.Router
		sc.interval, sc.msgs = interval, int(10*time.Second/interval)
		sc.kill, sc.killAt, sc.killRoot = 0.2, sc.msgs/2, true
		s := newSim(t, sc)
		m := newControlMeter(sc.cfg)
		s.forge = func(i int, out *Output) { m.observe(s, i, out) }
		s.runAll()
		s.checkExactlyOnce(sc.killAt)
		links := 0
		for _, a := range s.adj {
			links += len(a)
		}
		seconds := (sc.warmup + 10*time.Second + sc.tail).Seconds()
		t.Logf("messages every %v: control to a peer, peak %d RPCs and %.1f units in a second; mean %.2f RPCs and %.1f units a peer-second",
			interval, m.peakRPCs, m.peakCost, float64(m.totalRPCs)/float64(links)/seconds, m.totalCost/float64(links)/seconds)
		if m.peakCost > rc.PeerControlRate/10 || m.peakCost > float64(rc.PeerControlBurst)/10 {
			t.Errorf("an honest node sent a peer %.1f units of control in a second: the budget is %v/s, burst %d",
				m.peakCost, rc.PeerControlRate, rc.PeerControlBurst)
		}
	}
}

// controlCost counts the RPC, each subscription and topic entry, each 8 IHAVE ids and each 32 IWANT ids, cuts and
// subscriptions past three times MaxPeerTopics, as far as the relay reads them; an RPC without hello, subscriptions or control costs nothing.
func TestControlCost(t *testing.T) {
	const maxIDs, maxTopics = 500, 64
	ids := func(n int) [][]byte { return floodIDs(0, n) }
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = floodTopic(i)
		}
		return out
	}
	tree := &messages.GossipTree{Topic: "t", Cuts: make([]*messages.GossipTreeCut, maxTreeCuts)}
	for name, c := range map[string]struct {
		rpc  *messages.GossipRPC
		want float64
	}{
		"messages alone": {&messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: "t"}}}, 0},
		"a hello":        {&messages.GossipRPC{Hello: true}, 1},
		"subscriptions, three times MaxPeerTopics read, the rest looked up": {&messages.GossipRPC{Subscriptions: make([]*messages.GossipSubscription, 300)},
			1 + 3*maxTopics + (300-3*maxTopics)/32.0},
		"subscriptions, twice MaxPeerTopics and a few": {&messages.GossipRPC{Subscriptions: make([]*messages.GossipSubscription, 150)}, 1 + 150},
		"an empty control": {&messages.GossipRPC{Control: &messages.GossipControl{}}, 1},
		"grafts and prunes, MaxPeerTopics each": {&messages.GossipRPC{Control: &messages.GossipControl{Graft: many(100),
			Prune: []*messages.GossipPrune{{Topic: "a"}, {Topic: "b"}}}}, 1 + maxTopics + 2},
		"an IHAVE of MaxIHaveLength ids read": {&messages.GossipRPC{Control: &messages.GossipControl{
			Ihave: []*messages.GossipIHave{{Topic: "t", Ids: ids(600)}}}}, 1 + 1 + maxIDs/8.0},
		"an IWANT of 64 ids": {&messages.GossipRPC{Control: &messages.GossipControl{Iwant: ids(64)}}, 1 + 2},
		"tree reports with cuts": {&messages.GossipRPC{Control: &messages.GossipControl{
			Tree: []*messages.GossipTree{tree, tree}}}, 1 + 2 + 2*maxTreeCuts/32.0},
	} {
		if got := controlCost(c.rpc, maxIDs, maxTopics); got != c.want {
			t.Errorf("%s: cost %v, want %v", name, got, c.want)
		}
	}
}

// A peer sending the largest tree reports the relay reads (one per joined topic, the longest paths, the most
// cuts) at 2000 RPCs a second, all its message rate allowed before the control budget, gets as many processed as
// its control budget pays for: one token of it does not buy a maximal RPC. Charged a token of the message rate,
// all 20 000 were processed, 113 µs of the relay's goroutine each (BenchmarkControlFlood).
func TestOneTokenDoesNotBuyAMaximalControlRPC(t *testing.T) {
	now := time.Now()
	a := floodShell(t, now)
	a.clock = func() time.Time { return now }
	rpcs := floodRPCs()["tree"]
	const rate, seconds = 2000, 10
	for i := range rate * seconds {
		now = now.Add(time.Second / rate)
		a.handleRPC(nid(floodAttacker), rpcs[i%len(rpcs)])
		if i%rate == rate-1 {
			a.heartbeat(now)
		}
	}
	cost := 1 + floodTopics*(1+maxTreeCuts/32.0) // the RPC, and each report with its cuts
	taken := rate*seconds - int(a.stats.RateLimitedControl)
	if limit := (float64(a.cfg.PeerControlBurst) + a.cfg.PeerControlRate*seconds) / cost; float64(taken) > limit {
		t.Fatalf("%d RPCs of tree reports in %d s: %d taken, the control budget pays for %.0f", rate*seconds, seconds, taken, limit)
	}
}

// BenchmarkRefusedMessages: an RPC of 8192 empty messages from a peer past its message rate (PeerMessageRate), at
// 2000 RPCs a second. Refused one at a time, each such RPC held the relay 200-440 µs (400-875 ms a second); the
// rest of an RPC is now refused at its first refused message: ~7 µs an RPC, most of it topicsFit's pass over the
// messages' topics, which since stop 59 are checked each after its token (~1 µs an RPC).
func BenchmarkRefusedMessages(b *testing.B) {
	now := time.Now()
	a := floodShell(b, now)
	a.clock = func() time.Time { return now }
	rpc := &messages.GossipRPC{Messages: make([]*messages.GossipMessage, 8192)}
	for i := range rpc.Messages {
		rpc.Messages[i] = &messages.GossipMessage{}
	}
	for a.limiter.Allow(nid(floodAttacker), now) { // the peer's burst, spent
	}
	refused := a.stats.RateLimited
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second / 2000)
		a.handleRPC(nid(floodAttacker), rpc)
	}
	b.ReportMetric(float64(a.stats.RateLimited-refused)/float64(b.N), "refused/rpc")
}
