package gossip

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// simConfig describes a simulated network: n routers, each dialing dial random others (links are symmetric), per
// link delays drawn once in [minDelay, maxDelay), one topic, msgs publications every interval from random live
// nodes after warmup, and, before publication killAt, the removal of a kill fraction of the nodes.
type simConfig struct {
	n, dial            int
	minDelay, maxDelay time.Duration
	warmup, interval   time.Duration
	tail               time.Duration
	msgs               int
	kill               float64
	killAt             int
	killRoot           bool // kill the root of the spanning tree among the others
	spareRoot          bool // never kill the root of the spanning tree
	seed               uint64
	cfg                Config
	// signed gives the nodes ed25519 identities, their ids, and has their roots sign their beacons and every node
	// check them (Config.TreeSign, TreeVerify), as the relay does.
	signed bool
}

type simEventKind int

const (
	evSend simEventKind = iota
	evBeat
	evPublish
)

type simEvent struct {
	at       time.Duration
	seq      uint64
	kind     simEventKind
	from, to int
	send     Send
	pub      int
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simMsg is what the simulation measures about one publication.
type simMsg struct {
	id        MsgID
	origin    int
	at        time.Duration
	delivered []int           // deliveries per node
	lastAt    time.Duration   // last delivery
	dups      int             // copies received beyond the first, at live nodes
	hops      int             // sum of hops over deliveries
	maxHops   int             // the longest path of a delivery
	arrivals  []time.Duration // delivery delays at other nodes
}

type sim struct {
	t       *testing.T
	sc      simConfig
	rng     *rand.Rand
	now     time.Duration
	epoch   time.Time
	seq     uint64
	events  eventQueue
	ids     []session.NodeID
	index   map[session.NodeID]int
	nodes   []*Router
	dead    []bool
	hostile []bool // nodes left out of the publishers and of the checks (their behaviour is forge's)
	adj     [][]int
	delay   map[[2]int]time.Duration
	msgs    []*simMsg
	byID    map[MsgID]*simMsg
	onDup   func(to, from int, m *Message)
	forge   func(i int, out *Output) // rewrites what a node sends: hostile behaviour
	idents  []*session.Identity      // with simConfig.signed
	// penalized counts, per hostile node, the penalties its peers gave it; a penalty of an honest node fails the
	// test.
	penalized map[int]int
}

const simTopic = "blocks"

func newSim(t *testing.T, sc simConfig) *sim {
	t.Helper()
	s := &sim{
		t: t, sc: sc, rng: rand.New(rand.NewPCG(sc.seed, 1)), epoch: time.Unix(1_700_000_000, 0),
		index: make(map[session.NodeID]int), delay: make(map[[2]int]time.Duration), byID: make(map[MsgID]*simMsg),
		adj: make([][]int, sc.n), dead: make([]bool, sc.n), hostile: make([]bool, sc.n), penalized: make(map[int]int),
	}
	for i := range sc.n {
		var id session.NodeID
		id[0], id[1], id[31] = byte(i>>8), byte(i), 0xaa
		cfg := sc.cfg
		if sc.signed {
			ident := simIdentity(t, sc.seed, i)
			s.idents = append(s.idents, ident)
			id, cfg.TreeSign, cfg.TreeVerify = ident.NodeID(), ident.Sign, true
		}
		s.ids = append(s.ids, id)
		s.index[id] = i
		cfg.Self = id
		r, err := NewRouter(cfg, rand.New(rand.NewPCG(sc.seed, uint64(i)+2)))
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, r)
	}
	for i := range sc.n {
		for _, j := range s.rng.Perm(sc.n)[:sc.dial+1] {
			if j != i && !slices.Contains(s.adj[i], j) && len(s.adj[i]) < sc.dial+sc.dial/2 {
				s.link(i, j)
			}
		}
	}
	for i, r := range s.nodes {
		s.dispatch(i, join(t, r, s.epoch, simTopic))
		s.push(&simEvent{at: time.Duration(s.rng.Int64N(int64(sc.cfg.HeartbeatInterval))), kind: evBeat, to: i})
	}
	for k := range sc.msgs {
		s.push(&simEvent{at: sc.warmup + time.Duration(k)*sc.interval, kind: evPublish, pub: k})
	}
	return s
}

func (s *sim) link(i, j int) {
	s.adj[i] = append(s.adj[i], j)
	s.adj[j] = append(s.adj[j], i)
	d := s.sc.minDelay + time.Duration(s.rng.Int64N(int64(s.sc.maxDelay-s.sc.minDelay)))
	s.delay[[2]int{i, j}], s.delay[[2]int{j, i}] = d, d
	for _, x := range [][2]int{{i, j}, {j, i}} {
		r := s.nodes[x[0]]
		if err := r.AddPeer(s.ids[x[1]]); err != nil {
			s.t.Fatal(err)
		}
		if err := r.PeerSubscribed(s.ids[x[1]], simTopic); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *sim) push(e *simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.events, e)
}

func (s *sim) time() time.Time { return s.epoch.Add(s.now) }

// dispatch performs a node's output: sends are scheduled after the link delay, deliveries are recorded.
func (s *sim) dispatch(i int, out Output) {
	if s.forge != nil {
		s.forge(i, &out)
	}
	for _, snd := range out.Send {
		j, ok := s.index[snd.To]
		if !ok {
			s.t.Fatalf("node %d sends to unknown peer", i)
		}
		if snd.Msg != nil { // a fresh copy per receiver, as decoding from the wire would give
			m := *snd.Msg
			snd.Msg = &m
		}
		s.push(&simEvent{at: s.now + s.delay[[2]int{i, j}], kind: evSend, from: i, to: j, send: snd})
	}
	for _, m := range out.Deliver {
		sm := s.byID[m.ID]
		if sm == nil {
			s.t.Fatalf("node %d delivers unknown message %s", i, m.ID)
		}
		sm.delivered[i]++
		if i != sm.origin {
			sm.lastAt = s.now
			sm.hops += int(m.Hops)
			sm.maxHops = max(sm.maxHops, int(m.Hops))
			sm.arrivals = append(sm.arrivals, s.now-sm.at)
		}
	}
	for _, p := range out.Penalize {
		if j := s.index[p.Peer]; !s.hostile[j] {
			s.t.Fatalf("node %d penalises honest node %d: %s", i, j, p.Why)
		}
		s.penalized[s.index[p.Peer]]++
	}
}

// simIdentity returns node i's identity in the simulation of seed (simConfig.signed).
func simIdentity(t testing.TB, seed uint64, i int) *session.Identity {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b, seed)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	ident, err := session.IdentityFromSeed(b)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

func (s *sim) run(until time.Duration) {
	for s.events.Len() > 0 && s.events[0].at <= until {
		e := heap.Pop(&s.events).(*simEvent)
		s.now = e.at
		switch e.kind {
		case evBeat:
			if !s.dead[e.to] {
				s.dispatch(e.to, s.nodes[e.to].Heartbeat(s.time()))
				e.at += s.sc.cfg.HeartbeatInterval
				s.push(e)
			}
		case evPublish:
			if e.pub == s.sc.killAt && s.sc.kill > 0 {
				s.killNodes()
			}
			s.publish(e.pub)
		case evSend:
			s.receive(e.from, e.to, e.send)
		}
	}
	s.now = until
}

func (s *sim) receive(i, j int, snd Send) {
	if s.dead[j] || s.dead[i] {
		return
	}
	r, from := s.nodes[j], s.ids[i]
	if snd.Control != nil {
		s.dispatch(j, r.HandleControl(s.time(), from, snd.Control))
	}
	if snd.Msg == nil {
		return
	}
	out, st := r.HandleMessage(s.time(), from, snd.Msg)
	s.dispatch(j, out)
	switch st {
	case Pending:
		s.dispatch(j, r.Validated(s.time(), snd.Msg.ID, Accept))
	case Duplicate:
		if s.onDup != nil {
			s.onDup(j, i, snd.Msg)
		}
		if sm := s.byID[snd.Msg.ID]; sm != nil {
			sm.dups++
		}
	default:
		s.t.Fatalf("node %d dropped a message from %d", j, i)
	}
}

func (s *sim) publish(k int) {
	var live []int
	for i, d := range s.dead {
		if !d && !s.hostile[i] {
			live = append(live, i)
		}
	}
	origin := live[s.rng.IntN(len(live))]
	m := &Message{Topic: simTopic, Data: fmt.Appendf(make([]byte, 0, 64), "message %d", k), Origin: s.ids[origin],
		Seq: uint64(k), OriginTime: s.time().UnixNano()}
	sm := &simMsg{id: DefaultMsgID(m), origin: origin, at: s.now, delivered: make([]int, s.sc.n)}
	s.msgs = append(s.msgs, sm)
	s.byID[sm.id] = sm
	out, err := s.nodes[origin].Publish(s.time(), m)
	if err != nil {
		s.t.Fatalf("publish %d from %d: %v", k, origin, err)
	}
	s.dispatch(origin, out)
}

func (s *sim) killNodes() {
	victims := s.rng.Perm(s.sc.n)[:int(s.sc.kill*float64(s.sc.n))]
	root := s.treeRoot()
	if s.sc.killRoot && !slices.Contains(victims, root) {
		victims[0] = root
	}
	if i := slices.Index(victims, root); s.sc.spareRoot && i >= 0 {
		victims = slices.Delete(victims, i, i+1)
	}
	for _, i := range victims {
		s.dead[i] = true
		for _, j := range s.adj[i] {
			s.dispatch(j, s.nodes[j].RemovePeer(s.time(), s.ids[i]))
		}
	}
}

// simFigures summarises publications from..to-1.
type simFigures struct {
	dupPerDelivery, deliveryRatio float64
	p50, p100, meanHops           float64 // p50 and p100 in ms: medians over messages
	ihavePerDelivery              float64 // over the whole run
	iwantPerDelivery              float64
}

func (s *sim) figures(from, to int) simFigures {
	var f simFigures
	var dups, deliveries, want int
	var p50s, p100s []float64
	for _, sm := range s.msgs[from:to] {
		dups += sm.dups
		for i, n := range sm.delivered {
			if !s.dead[i] && !s.hostile[i] && i != sm.origin {
				want++
				deliveries += min(n, 1)
			}
		}
		a := slices.Sorted(slices.Values(sm.arrivals))
		if len(a) > 0 {
			p50s = append(p50s, float64(a[len(a)/2])/1e6)
			p100s = append(p100s, float64(a[len(a)-1])/1e6)
		}
		f.meanHops += float64(sm.hops)
	}
	f.dupPerDelivery = float64(dups) / float64(deliveries)
	f.deliveryRatio = float64(deliveries) / float64(want)
	f.meanHops /= float64(deliveries)
	slices.Sort(p50s)
	slices.Sort(p100s)
	f.p50, f.p100 = p50s[len(p50s)/2], p100s[len(p100s)/2]
	var st Stats
	for _, r := range s.nodes {
		x := r.Stats()
		st.IHaveSent += x.IHaveSent
		st.IWantSent += x.IWantSent
		st.Delivered += x.Delivered - x.Published
	}
	f.ihavePerDelivery = float64(st.IHaveSent) / float64(st.Delivered)
	f.iwantPerDelivery = float64(st.IWantSent) / float64(st.Delivered)
	return f
}

func (f simFigures) String() string {
	return fmt.Sprintf("dup/delivery %.3f, delivery ratio %.4f, median p50 %.0f ms, median p100 %.0f ms, "+
		"mean hops %.2f, IHAVE ids/delivery %.2f, IWANT ids/delivery %.3f", f.dupPerDelivery, f.deliveryRatio,
		f.p50, f.p100, f.meanHops, f.ihavePerDelivery, f.iwantPerDelivery)
}

func defaultSim() simConfig {
	return simConfig{
		n: 100, dial: 10, minDelay: 5 * time.Millisecond, maxDelay: 25 * time.Millisecond,
		warmup: 5 * time.Second, interval: 200 * time.Millisecond, tail: 10 * time.Second, msgs: 50,
		seed: 1, cfg: DefaultConfig(),
	}
}

func (s *sim) runAll() {
	s.run(s.sc.warmup + time.Duration(s.sc.msgs)*s.sc.interval + s.sc.tail)
}

// checkExactlyOnce asserts that every live node delivered publications from..to-1 exactly once, and earlier ones
// at most once.
func (s *sim) checkExactlyOnce(from int) {
	s.t.Helper()
	for k, sm := range s.msgs {
		for i, n := range sm.delivered {
			if !s.hostile[i] && (n > 1 || (n != 1 && k >= from && !s.dead[i])) {
				s.t.Errorf("message %d: node %d (dead %v) delivered it %d times", k, i, s.dead[i], n)
			}
		}
	}
}

func TestSimulationTreeConverges(t *testing.T) {
	sc := defaultSim()
	s := newSim(t, sc)
	s.runAll()
	s.checkExactlyOnce(0)
	all, first, last := s.figures(0, sc.msgs), s.figures(0, 10), s.figures(sc.msgs-20, sc.msgs)
	links := 0
	for _, a := range s.adj {
		links += len(a)
	}
	t.Logf("n=%d, %.1f topic peers per node on average", sc.n, float64(links)/float64(sc.n))
	t.Logf("n=%d, first 10 messages: %v", sc.n, first)
	t.Logf("n=%d, last 20 messages: %v", sc.n, last)
	t.Logf("n=%d, all messages: %v", sc.n, all)
	if last.dupPerDelivery >= 0.5 {
		t.Errorf("duplicates per delivery over the last 20 messages = %.3f, want < 0.5", last.dupPerDelivery)
	}
	if last.deliveryRatio != 1 {
		t.Errorf("delivery ratio %v, want 1", last.deliveryRatio)
	}
}

func TestSimulationKill20Percent(t *testing.T) {
	sc := defaultSim()
	sc.kill, sc.killAt = 0.2, 25
	s := newSim(t, sc)
	s.runAll()
	s.checkExactlyOnce(sc.killAt)
	after := s.figures(sc.killAt, sc.msgs)
	t.Logf("n=%d, 20%% killed before message %d, messages after: %v", sc.n, sc.killAt, after)
	if after.dupPerDelivery >= 0.5 {
		t.Errorf("duplicates per delivery after the kill = %.3f, want < 0.5", after.dupPerDelivery)
	}
	t.Logf("last 10 messages: %v", s.figures(sc.msgs-10, sc.msgs))
}

func TestSimulationDeterministic(t *testing.T) {
	run := func() ([]int, Stats) {
		sc := defaultSim()
		sc.n, sc.msgs, sc.kill, sc.killAt = 40, 20, 0.2, 10
		s := newSim(t, sc)
		s.runAll()
		var dups []int
		var st Stats
		for _, sm := range s.msgs {
			dups = append(dups, sm.dups)
		}
		for _, r := range s.nodes {
			x := r.Stats()
			st.IHaveSent += x.IHaveSent
			st.GraftsSent += x.GraftsSent
			st.PrunesSent += x.PrunesSent
		}
		return dups, st
	}
	d1, s1 := run()
	d2, s2 := run()
	if !slices.Equal(d1, d2) || s1 != s2 {
		t.Errorf("two runs with one seed differ: %v %+v and %v %+v", d1, s1, d2, s2)
	}
}

// treeRoot returns the live node most live nodes take as their tree's root, -1 if none.
func (s *sim) treeRoot() int {
	votes := make(map[int]int)
	root := -1
	for i, r := range s.nodes {
		if s.dead[i] {
			continue
		}
		got, _, _, _ := r.TreeLinks(simTopic)
		if j, ok := s.index[got]; ok && !s.dead[j] {
			if votes[j]++; root < 0 || votes[j] > votes[root] {
				root = j
			}
		}
	}
	return root
}

// checkTree asserts that the live nodes agree on one live root that no live node outranks by more than
// rootIncumbency steps, and that their parents form a tree over live links whose distances are consistent. It
// returns the tree's depth.
func (s *sim) checkTree() int {
	s.t.Helper()
	root := s.treeRoot()
	if root < 0 {
		s.t.Errorf("no live node is taken as the root")
		return 0
	}
	for i, r := range s.nodes {
		if !s.dead[i] && r.TreeRank(simTopic) > s.nodes[root].TreeRank(simTopic)+rootIncumbency {
			s.t.Errorf("node %d of rank %d did not take over root %d of rank %d", i, r.TreeRank(simTopic), root,
				s.nodes[root].TreeRank(simTopic))
		}
	}
	depth := 0
	for i, r := range s.nodes {
		if s.dead[i] {
			continue
		}
		gotRoot, parent, dist, _ := r.TreeLinks(simTopic)
		if gotRoot != s.ids[root] {
			s.t.Errorf("node %d: root %d, want %d", i, s.index[gotRoot], root)
			continue
		}
		if i == root {
			if !parent.IsZero() || dist != 0 {
				s.t.Errorf("root %d has parent %v, distance %d", i, parent.IsZero(), dist)
			}
			continue
		}
		p, ok := s.index[parent]
		if !ok || s.dead[p] || !slices.Contains(s.adj[i], p) {
			s.t.Errorf("node %d: parent %d is not a live neighbour", i, p)
			continue
		}
		if _, _, pd, _ := s.nodes[p].TreeLinks(simTopic); pd != dist-1 {
			s.t.Errorf("node %d at distance %d has parent %d at distance %d", i, dist, p, pd)
		}
		depth = max(depth, dist)
	}
	return depth
}

func treeSim() simConfig {
	sc := defaultSim()
	sc.n, sc.dial = 200, 8
	sc.cfg.Tree, sc.cfg.TreeRanked = true, true // as in DefaultRelayConfig
	return sc
}

func TestSimulationSpanningTree(t *testing.T) {
	sc := treeSim()
	s := newSim(t, sc)
	s.runAll()
	s.checkExactlyOnce(0)
	depth := s.checkTree()
	last := s.figures(sc.msgs-20, sc.msgs)
	t.Logf("n=%d, tree depth %d; first 10 messages: %v", sc.n, depth, s.figures(0, 10))
	t.Logf("n=%d, last 20 messages: %v", sc.n, last)
	if last.dupPerDelivery != 0 || last.deliveryRatio != 1 {
		t.Errorf("on the settled tree: %v, want no duplicate and every delivery", last)
	}
	for _, sm := range s.msgs[sc.msgs-20:] {
		if sm.maxHops > 2*depth {
			t.Errorf("a message crossed %d links, more than twice the tree depth %d", sm.maxHops, depth)
		}
	}
	flood := sc
	flood.cfg.Tree = false
	t.Logf("n=%d, same network without the tree (Plumtree), last 20 messages: %v", sc.n, func() simFigures {
		f := newSim(t, flood)
		f.runAll()
		return f.figures(sc.msgs-20, sc.msgs)
	}())
}

func TestSimulationTreeSurvivesRootKill(t *testing.T) {
	sc := treeSim()
	sc.msgs = 100 // the last ones go out well after the live nodes gave the dead root up (TreeStaleBeats)
	sc.kill, sc.killAt, sc.killRoot = 0.2, 25, true
	s := newSim(t, sc)
	// The root's children report their lost link (a cut): every other node finds every route to the dead root
	// cut within round trips, rather than waiting TreeStaleBeats for its beacon to stop. Two heartbeats after the
	// kill, the live nodes agree on a new root.
	s.run(sc.warmup + time.Duration(sc.killAt)*sc.interval + 2*sc.cfg.HeartbeatInterval)
	if depth := s.checkTree(); s.t.Failed() {
		t.Fatalf("two heartbeats after the root was killed, the tree is not whole again (depth %d)", depth)
	}
	s.runAll()
	s.checkExactlyOnce(sc.killAt)
	s.checkTree()
	after, last := s.figures(sc.killAt, sc.msgs), s.figures(sc.msgs-10, sc.msgs)
	t.Logf("n=%d, 20%% killed with the root before message %d; messages after: %v", sc.n, sc.killAt, after)
	t.Logf("last 10 messages: %v", last)
	if after.deliveryRatio != 1 || last.dupPerDelivery != 0 {
		t.Errorf("after the root was killed: %v; last 10: %v", after, last)
	}
}

// TestSimulationTreeRepairsAtOnceAfterAKill kills 20% of the nodes of the relay's default tree (the root spared):
// the orphans take a new parent at once and refuse the routes through the dead nodes their peers still report
// (TreeCut), so every message published from a round trip after the kill on reaches every live node along the
// tree, rather than the next heartbeat's repair or IHAVE/IWANT.
func TestSimulationTreeRepairsAtOnceAfterAKill(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		if late := lateAfterKill(t, seed, false); len(late) > 0 {
			t.Errorf("seed %d: %v", seed, late)
		}
	}
}

// TestSimulationMessagesCrossWhileTheTreeChangesRoot kills 20% of the nodes of the relay's default tree, its root
// among them: for a second or so, some survivors have taken a new root while others are still on the old one, and
// messages cross between the two trees over the links that join them (crossLinks) rather than by IHAVE/IWANT.
// Without them, 8-13 messages per seed took over 200 ms (82 in these 8 seeds); with them, 6.
func TestSimulationMessagesCrossWhileTheTreeChangesRoot(t *testing.T) {
	var late []string
	for seed := uint64(1); seed <= 8; seed++ {
		for _, l := range lateAfterKill(t, seed, true) {
			late = append(late, fmt.Sprintf("seed %d: %s", seed, l))
		}
	}
	if len(late) > 16 {
		t.Errorf("%d messages after the root's kill took over 200 ms, want at most 16 in 8 seeds: %v", len(late), late)
	}
}

// lateAfterKill runs the relay's default tree over 200 nodes and 20 ms links, kills 20% of them (the root among
// them or spared) before the 26th of 50 messages published every 100 ms, checks that every live node got every
// later message once and returns those of them that took over 200 ms to reach every live node.
func lateAfterKill(t *testing.T, seed uint64, killRoot bool) []string {
	t.Helper()
	sc := relaySim(seed)
	sc.kill, sc.killAt, sc.killRoot, sc.spareRoot = 0.2, 25, killRoot, !killRoot
	s := newSim(t, sc)
	s.runAll()
	s.checkExactlyOnce(sc.killAt)
	for i, r := range s.nodes {
		if n := r.Stats().TreeDistrusted; n > 0 {
			t.Errorf("seed %d: node %d gave a root up %d times for withholding messages after a kill", seed, i, n)
		}
		if n := r.Stats().TreeShunned; n > 0 {
			t.Errorf("seed %d: node %d left a parent %d times for withholding messages after a kill", seed, i, n)
		}
	}
	var late []string
	for k, sm := range s.msgs[sc.killAt+1:] {
		if d := slices.Max(sm.arrivals); d > 200*time.Millisecond {
			late = append(late, fmt.Sprintf("message %d after the kill took %v", k+1, d))
		}
	}
	return late
}

// relaySim is the relay's default tree over 200 nodes and 20 ms links, 50 messages published every 100 ms after 20 s.
func relaySim(seed uint64) simConfig {
	sc := treeSim()
	sc.cfg = DefaultRelayConfig().Router
	sc.cfg.TreeShortcutDist = 0 // the simulation makes no connections
	sc.minDelay, sc.maxDelay = 20*time.Millisecond, 20*time.Millisecond+1
	sc.interval, sc.warmup, sc.seed = 100*time.Millisecond, 20*time.Second, seed
	return sc
}
