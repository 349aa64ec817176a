package routing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// busyNet answers every request at once with an error wrapping ErrPeerBusy (a peer's "overloaded", or the local
// ErrTooManyPeers), and reports which peer was asked.
type busyNet struct {
	stallingNet
	asked chan session.NodeID
}

func (n *busyNet) Request(_ context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	n.asked <- peer
	return nil, fmt.Errorf("%w: overloaded", ErrPeerBusy)
}

// A check answered "busy" neither fails the entry nor marks it alive; the next ticks check other entries. Before,
// the busy nearest neighbour was the nearest unanswered entry again at every tick, and the others, dead ones
// included, were never checked.
func TestBusyNeighbourDoesNotTakeEveryRevalidation(t *testing.T) {
	rig := newRevalidationRig(t, 34)
	net := &busyNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan session.NodeID, 1)}
	a, tab := rig.actor(t, net), rig.tab
	busy := rig.addNeighbours() // the nearest entry, and farther, staler ones nobody has checked yet
	// Ten ticks: five minutes at the default interval.
	checked := rig.tick(t, a, net.asked, 10, func(peer session.NodeID) *exchangeDone {
		return &exchangeDone{peer: peer, check: true, err: fmt.Errorf("%w: overloaded", ErrPeerBusy)}
	})
	// Every entry is checked before the busy neighbour again: twice in 10 ticks over 6 entries.
	if checked[busy] > 2 || len(checked) != tab.Len() {
		t.Fatalf("checks per entry over 10 ticks: %d of the busy neighbour, %d entries of %d checked",
			checked[busy], len(checked), tab.Len())
	}
	if tab.Len() != 6 {
		t.Fatalf("a busy answer evicted entries: %d left of 6", tab.Len())
	}
}

// revalidationRig holds what a routing actor driven by hand (revalidate, exchangeDone, serve) needs: an actor system
// whose sink takes its exchanges' reports, and a table with the default configuration. The system shuts down with
// the test.
type revalidationRig struct {
	sys  *actor.ActorSystem
	sink *actor.PID
	rng  *rand.Rand
	self session.NodeID
	cfg  Config
	tab  *Table
}

func newRevalidationRig(t *testing.T, seed uint64) *revalidationRig {
	r := &revalidationRig{sys: actor.NewActorSystem(), rng: newRand(seed), cfg: DefaultConfig()}
	t.Cleanup(r.sys.Shutdown)
	r.sink = r.sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	r.self = randID(r.rng)
	var err error
	if r.tab, err = NewTable(r.self, r.cfg.Table); err != nil {
		t.Fatal(err)
	}
	return r
}

// actor returns a routing actor over the rig's table and net, not spawned. Its context ends with the test.
func (r *revalidationRig) actor(t *testing.T, net Network) *routingActor {
	cfg := r.cfg
	a := &routingActor{
		routingState: &routingState{gone: newGoneNodes(maxGoneNodes, goneTTL)}, cfg: cfg, net: net, table: r.tab, records: newVerifiedRecords(64),
		limiter: NewRateLimiter[session.NodeID](cfg.RequestRate, cfg.RequestBurst, 64),
		checks:  NewRateLimiter[bool](cfg.CheckRate, cfg.CheckBurst, 1),
		rng:     r.rng, checking: map[session.NodeID]bool{}, lookups: map[string]*LookupRequest{},
		busy: map[session.NodeID]struct{}{}, introducing: map[session.NodeID]struct{}{},
		self: r.sink, root: r.sys.Root, answeredDue: t0.Add(time.Hour),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		a.cancel()
		if a.introTimer != nil { // a node learned second-hand armed an introduction tick (learnedSecondHand)
			a.introTimer.Stop()
		}
	})
	return a
}

// tick runs n revalidation ticks of a, a RevalidateInterval apart from t0: each must ask a peer (reported on
// asked), whose check then ends as outcome says. It returns how many times each peer was checked.
func (r *revalidationRig) tick(t *testing.T, a *routingActor, asked <-chan session.NodeID, n int, outcome func(session.NodeID) *exchangeDone) map[session.NodeID]int {
	t.Helper()
	checked := map[session.NodeID]int{}
	now := t0
	for range n {
		now = now.Add(r.cfg.RevalidateInterval)
		a.revalidate(now)
		var peer session.NodeID
		select {
		case peer = <-asked:
		case <-time.After(5 * time.Second):
			t.Fatal("revalidate asked nobody")
		}
		a.wg.Wait()
		checked[peer]++
		a.exchangeDone(outcome(peer), now)
	}
	return checked
}

// addNeighbours adds the table's nearest entry, which it returns, and five farther, staler ones that nobody has
// checked yet.
func (r *revalidationRig) addNeighbours() session.NodeID {
	nearest := idInBucket(r.rng, r.self, 250)
	r.tab.Add(Entry{ID: nearest, Addr: "198.51.100.7:4001"}, t0)
	for range 5 {
		r.tab.Add(Entry{ID: idInBucket(r.rng, r.self, 256), Addr: randAddr(r.rng)}, t0.Add(-time.Hour))
	}
	return nearest
}

// recordlessNet answers every request at once with a Nodes that carries no sender record (a hostile peer's
// answer, or an honest one's whose record is stale to the asker: its clock went back), and reports which peer was
// asked.
type recordlessNet struct {
	stallingNet
	asked chan session.NodeID
}

func (n *recordlessNet) Request(_ context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	n.asked <- peer
	return &messages.Nodes{}, nil
}

// A neighbour that answers a liveness check without its own record answered all the same (over a connection
// authenticated as its own): it is marked alive, and the next ticks check the other entries. It used to be marked
// neither alive nor failed, and took every tick from then on: no other entry was checked again, dead ones included.
func TestANeighbourAnsweringWithoutItsRecordIsAlive(t *testing.T) {
	rig := newRevalidationRig(t, 34)
	net := &recordlessNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan session.NodeID, 1)}
	a, tab := rig.actor(t, net), rig.tab
	recordless := rig.addNeighbours()
	// As many ticks as entries: each is checked once, and has answered.
	checked := rig.tick(t, a, net.asked, tab.Len(), func(peer session.NodeID) *exchangeDone {
		return &exchangeDone{peer: peer, check: true, reply: &messages.Nodes{}}
	})
	if e, _ := tab.Get(recordless); !e.Answered() || len(checked) != tab.Len() {
		t.Fatalf("the neighbour answering without its record: answered %v, checked %d times in %d ticks; %d entries of %d checked",
			e.Answered(), checked[recordless], tab.Len(), len(checked), tab.Len())
	}
}

// recordNet is a Network that records the addresses the routing actor gives the node's address book.
type recordNet struct {
	stallingNet
	addrs map[session.NodeID]string
}

func (n *recordNet) AddAddress(id session.NodeID, addr string) { n.addrs[id] = addr }

// A replayed older record of a node waiting in a replacement cache is refused, as it is for a node in the table's
// entries: it used to replace the newer one there, and its address went to the address book.
func TestStaleRecordDoesNotReplaceANewerOneInAReplacementCache(t *testing.T) {
	rng := newRand(33)
	self := identity(t, 200).NodeID()
	cfg := DefaultConfig()
	cfg.IntroduceDelay = 0 // an actor built by hand, with no system to tick it
	cfg.Table = noLimits()
	cfg.Table.KeepNearest = false
	tab, err := NewTable(self, cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	net := &recordNet{stallingNet: stallingNet{id: self}, addrs: map[session.NodeID]string{}}
	a := &routingActor{
		routingState: &routingState{gone: newGoneNodes(maxGoneNodes, goneTTL)}, cfg: cfg, net: net, table: tab, records: newVerifiedRecords(64),
		limiter: NewRateLimiter[session.NodeID](cfg.RequestRate, cfg.RequestBurst, 64),
		checks:  NewRateLimiter[bool](cfg.CheckRate, cfg.CheckBurst, 1),
		rng:     rng, checking: map[session.NodeID]bool{}, lookups: map[string]*LookupRequest{},
		busy: map[session.NodeID]struct{}{}, ctx: context.Background(),
	}
	x := identity(t, 1)
	d := LogDistance(tab.SelfKey(), KeyOf(x.NodeID()))
	for range cfg.Table.K { // x's bucket full: x waits in its replacement cache
		if r := tab.Add(Entry{ID: idInBucket(rng, self, d), Addr: randAddr(rng)}, t0); r.Status != Added {
			t.Fatalf("filling the bucket: %v", r.Status)
		}
	}
	newer, err := NewRecord(x, 2, []string{"192.0.2.2:4001"})
	if err != nil {
		t.Fatal(err)
	}
	older, err := NewRecord(x, 1, []string{"192.0.2.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(newer, t0, false, false)
	if seq, ok := tab.RecordSeq(x.NodeID()); !ok || seq != 2 {
		t.Fatalf("the newer record is not held: seq %d, %v", seq, ok)
	}
	a.addRecord(older, t0.Add(time.Second), false, false)
	if seq, _ := tab.RecordSeq(x.NodeID()); seq != 2 || net.addrs[x.NodeID()] != "192.0.2.2:4001" {
		t.Fatalf("after replaying seq 1 over seq 2: the table holds seq %d, the address book %s", seq, net.addrs[x.NodeID()])
	}
}

// A node whose own address is off its host takes no loopback address from others' records (dialing it would reach
// its own host), in its table or in its lookups; a node on loopback, as in tests and simulations, does.
func TestLoopbackRecordsAreTakenOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		local string
		taken bool
	}{{"203.0.113.5:4001", false}, {"127.0.0.1:4001", true}} {
		self := identity(t, 200)
		cfg := DefaultConfig()
		cfg.IntroduceDelay = 0 // an actor built by hand, with no system to tick it
		tab, err := NewTable(self.NodeID(), cfg.Table)
		if err != nil {
			t.Fatal(err)
		}
		local, err := NewRecord(self, 1, []string{tc.local})
		if err != nil {
			t.Fatal(err)
		}
		a := &routingActor{
			cfg: cfg, net: &recordNet{addrs: map[session.NodeID]string{}}, table: tab, records: newVerifiedRecords(64),
			checks: NewRateLimiter[bool](cfg.CheckRate, cfg.CheckBurst, 1), checking: map[session.NodeID]bool{},
			busy: map[session.NodeID]struct{}{}, routingState: &routingState{local: local, gone: newGoneNodes(maxGoneNodes, goneTTL)}, ctx: context.Background(),
		}
		// The name localhost (and names under it) resolves to loopback too.
		for i, addr := range []string{"127.0.0.1:4002", "[::1]:4002", "localhost:4002", "LOCALHOST.:4002", "api.localhost:4002"} {
			x := identity(t, byte(1+i))
			r, err := NewRecord(x, 1, []string{addr})
			if err != nil {
				t.Fatal(err)
			}
			a.addRecord(r, t0, false, false)
			if _, ok := tab.Get(x.NodeID()); ok != tc.taken {
				t.Errorf("node at %s: record of %s taken %v, want %v", tc.local, addr, ok, tc.taken)
			}
			// A lookup asks every candidate of an answer: it keeps out what the table would.
			l := &lookupActor{records: newVerifiedRecords(64), local: local}
			if got := l.entries(&messages.Nodes{Records: []*messages.NodeRecord{r}}); (len(got) == 1) != tc.taken {
				t.Errorf("node at %s: a lookup took %d candidates at %s, want taken %v", tc.local, len(got), addr, tc.taken)
			}
		}
	}
}

// bookNet records the addresses the routing actor gives the node's address book; its requests fail at once.
type bookNet struct {
	id    session.NodeID
	mu    sync.Mutex
	addrs map[session.NodeID]string
}

func (n *bookNet) ID() session.NodeID { return n.id }
func (n *bookNet) Request(context.Context, session.NodeID, string, proto.Message) (proto.Message, error) {
	return nil, errors.New("unreachable")
}
func (n *bookNet) AddAddress(id session.NodeID, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[id] = addr
}
func (n *bookNet) forget(id session.NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.addrs, id)
}
func (n *bookNet) addr(id session.NodeID) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[id]
}
func (n *bookNet) Ban(session.NodeID, time.Duration, string) error     { return nil }
func (n *bookNet) SubscribeEvents(func(proto.Message)) (func(), error) { return func() {}, nil }

// A liveness check dials the checked node at the address its table entry holds, even when the node's bounded
// address book has forgotten it since (a dial of an unknown address would first look the node up in the DHT).
func TestALivenessCheckGivesTheAddressBookTheEntrysAddress(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	self := identity(t, 200).NodeID()
	net := &bookNet{id: self, addrs: map[session.NodeID]string{}}
	cfg := DefaultConfig()
	cfg.RevalidateInterval, cfg.RequestTimeout = 20*time.Millisecond, time.Second
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	x := identity(t, 1)
	r, err := NewRecord(x, 1, []string{"198.51.100.7:4001"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(pid, &AddRecords{Records: []*messages.NodeRecord{r}})
	poll.Until(t, 5*time.Second, func() bool { return net.addr(x.NodeID()) != "" }, "the record's address in the book")
	net.forget(x.NodeID()) // the bounded book forgot it
	poll.Until(t, 5*time.Second, func() bool { return net.addr(x.NodeID()) == "198.51.100.7:4001" },
		"the liveness check of the entry giving the book its address back")
}

// A lookup with an empty table and no seeds starts from its Fallback (the node's connected peers, which the table
// learns of only after an exchange): it used to fail with ErrNoPeers right after a first Connect.
func TestALookupStartsFromItsFallbackWhenTheTableIsEmpty(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := &bookNet{id: identity(t, 200).NodeID(), addrs: map[session.NodeID]string{}}
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	peer := identity(t, 1).NodeID()
	lookup := func(fallback []Entry) LookupResult {
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: KeyOf(identity(t, 2).NodeID()), Fallback: fallback, Reply: reply})
		select {
		case r := <-reply:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no lookup result")
			return LookupResult{}
		}
	}
	if r := lookup(nil); !errors.Is(r.Err, ErrNoPeers) {
		t.Fatalf("no table, no seeds, no fallback: %v, want ErrNoPeers", r.Err)
	}
	r := lookup([]Entry{{ID: peer, Key: KeyOf(peer), Addr: "198.51.100.9:4001"}})
	if errors.Is(r.Err, ErrNoPeers) || r.Queried != 1 || net.addr(peer) != "198.51.100.9:4001" {
		t.Fatalf("with a fallback: err %v, %d asked, book %q; want the fallback asked", r.Err, r.Queried, net.addr(peer))
	}
}

// A newcomer for a full bucket checks the bucket's least recently seen entry at the address its table entry holds,
// as a revalidation check does: the node's bounded address book may have forgotten it (the check's dial would
// then look the node up in the DHT first).
func TestANewcomerCheckGivesTheAddressBookTheEntrysAddress(t *testing.T) {
	rig := newRevalidationRig(t, 36)
	rig.cfg.Table.KeepNearest = false
	var err error
	if rig.tab, err = NewTable(rig.self, rig.cfg.Table); err != nil {
		t.Fatal(err)
	}
	net := &bookNet{id: rig.self, addrs: map[session.NodeID]string{}}
	a := rig.actor(t, net)
	x := identity(t, 1)
	d := LogDistance(rig.tab.SelfKey(), KeyOf(x.NodeID()))
	var stalest Entry
	for i := range rig.cfg.Table.K { // x's bucket full, each entry seen long ago, the first the longest ago
		e := Entry{ID: idInBucket(rig.rng, rig.self, d), Addr: randAddr(rig.rng)}
		if r := rig.tab.Add(e, t0.Add(-time.Hour+time.Duration(i)*time.Second)); r.Status != Added {
			t.Fatalf("filling the bucket: %v", r.Status)
		}
		if i == 0 {
			stalest = e
		}
	}
	r, err := NewRecord(x, 1, []string{"192.0.2.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(r, t0, true, false)
	a.wg.Wait()
	if a.stats.NewcomerChecks != 1 || net.addr(stalest.ID) != stalest.Addr {
		t.Fatalf("newcomer checks %d (want 1); the address book holds %q for the checked entry, want %q",
			a.stats.NewcomerChecks, net.addr(stalest.ID), stalest.Addr)
	}
}

// A RevalidateInterval meaning "never" (math.MaxInt64 passes Validate) waits about that long: 3d/2 overflowed, and
// half the draws were negative waits, an immediate tick each.
func TestJitteredWaitOfAnEndlessInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		if w := jittered(rng, math.MaxInt64); w < math.MaxInt64/4 {
			t.Fatalf("jittered(MaxInt64) = %v", w)
		}
	}
}

// NewActorProps without a Network fails with ErrInvalidConfig (the actor panicked on its first use of it).
func TestNewActorPropsNeedsANetwork(t *testing.T) {
	if _, err := NewActorProps(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewActorProps with a nil Network: %v, want ErrInvalidConfig", err)
	}
}

// TestAnEvictedNodeIsNotRelearnedFromOthers: a node the liveness checks evicted does not come back through its
// old record relayed by other nodes' answers (or a peer store): in a small network a node that had left was
// re-learned within seconds, with a fresh LastSeen, and dialed about once a second for good (an audit's finding).
// A newer record (the node restarted) or the node's own answer brings it back.
func TestAnEvictedNodeIsNotRelearnedFromOthers(t *testing.T) {
	r := newRevalidationRig(t, 11)
	net := &recordNet{addrs: map[session.NodeID]string{}}
	a := r.actor(t, net)
	x := identity(t, 42)
	old, err := NewRecord(x, 1, []string{"192.0.2.9:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(old, t0, false, false)
	if _, ok := r.tab.Get(x.NodeID()); !ok {
		t.Fatal("the record was not taken to begin with")
	}
	now := t0
	for range r.cfg.Table.MaxFailures {
		now = now.Add(r.cfg.Table.FailureSpacing + r.cfg.RequestTimeout) // sent FailureSpacing after the last failure
		a.exchangeDone(checkFailed(a, x.NodeID(), errors.New("no answer"), now), now)
	}
	if _, ok := r.tab.Get(x.NodeID()); ok {
		t.Fatal("the dead node was not evicted")
	}
	a.addRecord(old, now.Add(time.Second), false, false) // another node's answer relays it
	if _, ok := r.tab.Get(x.NodeID()); ok || a.stats.GoneRecords != 1 {
		t.Fatalf("the evicted node's old record, relayed by another node, was taken again (in table %v, GoneRecords %d)", ok, a.stats.GoneRecords)
	}
	restarted, err := NewRecord(x, 2, []string{"192.0.2.9:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(restarted, now.Add(2*time.Second), false, false)
	if _, ok := r.tab.Get(x.NodeID()); !ok {
		t.Fatal("the node's newer record (it restarted) was not taken")
	}

	// Evicted again, its own answer (its record as the sender of a reply) brings it back.
	for range r.cfg.Table.MaxFailures {
		now = now.Add(r.cfg.Table.FailureSpacing + r.cfg.RequestTimeout) // sent FailureSpacing after the last failure
		a.exchangeDone(checkFailed(a, x.NodeID(), errors.New("no answer"), now), now)
	}
	a.learn(x.NodeID(), &messages.Nodes{Sender: restarted}, now.Add(time.Second), false)
	if _, ok := r.tab.Get(x.NodeID()); !ok {
		t.Fatal("the evicted node's own answer did not bring it back")
	}
}
