package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// fakeNet is a Network whose answers a test sets: a fixed outbound count, a routing table, the bootnodes' and
// the lookups' answers; it records the lookups' targets and the dials.
type fakeNet struct {
	mu       sync.Mutex
	outbound int
	entries  []routing.Entry
	// entriesAfter, if positive, is how many copies of the table come back empty before the entries show: records
	// handed to the routing table reach it asynchronously.
	entriesAfter int
	copies       int
	fromErr      error                // FindClosestFrom's error
	fromRes      routing.LookupResult // FindClosestFrom's answer, unless it needs the table
	needsTable   bool                 // FindClosestFrom fails unless a copy of the table held entries already
	connectErr   error                // Connect's error
	targets      []routing.Key
	dialed       []session.NodeID
}

func (n *fakeNet) ID() session.NodeID { return session.NodeID{1} }
func (n *fakeNet) Connect(_ context.Context, addr session.PeerAddr, _ bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialed = append(n.dialed, addr.ID)
	return n.connectErr
}
func (n *fakeNet) Connected(session.NodeID) bool         { return false }
func (n *fakeNet) TransientOutbound(session.NodeID) bool { return false }
func (n *fakeNet) OutboundCount() int                    { return n.outbound }
func (n *fakeNet) AddRecords([]*messages.NodeRecord)     {}
func (n *fakeNet) SetJoining(bool)                       {}
func (n *fakeNet) FindClosest(_ context.Context, target routing.Key) (routing.LookupResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.targets = append(n.targets, target)
	return routing.LookupResult{}, nil
}
func (n *fakeNet) FindClosestFrom(_ context.Context, target routing.Key, _ []session.PeerAddr) (routing.LookupResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.targets = append(n.targets, target)
	if n.needsTable && n.copies <= n.entriesAfter {
		return routing.LookupResult{}, errors.New("fake: lookup from an empty table")
	}
	return n.fromRes, n.fromErr
}
func (n *fakeNet) RoutingTable(context.Context) (routing.Snapshot, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.copies++
	if n.copies <= n.entriesAfter {
		return routing.Snapshot{}, nil
	}
	return routing.Snapshot{Entries: slices.Clone(n.entries)}, nil
}

// testBootstrapper is a bootstrapper on net, outside any actor system: a test calls its run or hands its Receive
// messages (stepContext). Its step timer must not fire during the test: cfg.Interval is an hour unless set.
func testBootstrapper(t *testing.T, cfg Config, net Network) *bootstrapper {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &bootstrapper{cfg: cfg, net: net, log: zerolog.Nop(), rng: rand.New(rand.NewPCG(1, 2)), ctx: ctx, cancel: cancel,
		backoff: map[session.NodeID]*candidateBackoff{}, quiet: map[session.NodeID]bool{},
		refresh: newRefreshSchedule(cfg.Interval, cfg.RefreshInterval, nil)}
	t.Cleanup(func() {
		cancel()
		if b.timer != nil {
			b.timer.Stop()
		}
	})
	return b
}

// receive hands b a step's outcome, as its mailbox would.
func (b *bootstrapper) receive(m *stepDone) {
	m.from = b
	if b.timer != nil {
		b.timer.Stop()
	}
	b.Receive(stepContext{msg: m})
}

var (
	testBootnode = session.PeerAddr{ID: session.NodeID{2}, Addr: "127.0.0.1:1"}
	testEntry    = routing.Entry{ID: session.NodeID{3}, Key: routing.KeyOf(session.NodeID{3}), Addr: "127.0.0.1:2"}
)

// A join is done only when the self-lookup through the bootnodes found somebody: a bootnode that answered the dial
// but whose lookup failed, or found nobody, leaves the node not joined, to join again at the next step.
func TestAJoinIsDoneOnlyWhenItsSelfLookupFindsNodes(t *testing.T) {
	for _, c := range []struct {
		name string
		res  routing.LookupResult
		err  error
		want bool
	}{
		{"found one", routing.LookupResult{Closest: []routing.Entry{testEntry}}, nil, true},
		{"failed", routing.LookupResult{}, routing.ErrNoAnswer, false},
		{"found nobody", routing.LookupResult{}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			net := &fakeNet{outbound: 1, entries: []routing.Entry{testEntry}, fromRes: c.res, fromErr: c.err}
			cfg := DefaultConfig()
			cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{testBootnode}, 1
			b := testBootstrapper(t, cfg, net)
			if got := b.run(context.Background(), stepPlan{join: true}).joined; got != c.want {
				t.Fatalf("joined %v, want %v", got, c.want)
			}
		})
	}
}

// storeWithOneRecord writes a peer store holding one record and returns its path.
func storeWithOneRecord(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.pb")
	rec := &messages.NodeRecord{Id: make([]byte, 32), Seq: 1, Addrs: []string{"10.0.0.1:1"}, Signature: []byte{1}}
	if err := routing.SaveStore(path, []*messages.NodeRecord{rec}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return path
}

// A node without bootnodes joins from its peer store: the records reach the routing table asynchronously, and the
// join's self-lookup waits until the table holds them (here the third copy of the table): looked up at once, from
// an empty table, it failed and the join was retried a step later.
func TestAJoinFromThePeerStoreLooksUpOnceTheRecordsAreIn(t *testing.T) {
	net := &fakeNet{entries: []routing.Entry{testEntry}, entriesAfter: 2, needsTable: true,
		fromRes: routing.LookupResult{Closest: []routing.Entry{testEntry}}}
	cfg := DefaultConfig()
	cfg.StorePath, cfg.TargetOutbound = storeWithOneRecord(t), 0
	b := testBootstrapper(t, cfg, net)
	if !b.run(context.Background(), stepPlan{join: true}).joined {
		t.Fatal("the join from the peer store failed, want joined once its records are in the table")
	}
}

// A join from a peer store whose records never reach the table (all refused, say) is not done: the node has
// nobody to look up from, and joins again at the next step.
func TestAJoinFromAPeerStoreWhoseRecordsNeverArriveIsNotDone(t *testing.T) {
	net := &fakeNet{entriesAfter: 1 << 30}
	cfg := DefaultConfig()
	cfg.StorePath, cfg.TargetOutbound = storeWithOneRecord(t), 0
	b := testBootstrapper(t, cfg, net)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if b.run(ctx, stepPlan{join: true}).joined {
		t.Fatal("joined with an empty table and no bootnode, want not")
	}
}

// A full refresh looks up a random key besides the node's own (RefreshInterval's doc: a self-lookup and a random
// lookup); an early one, only the node's own.
func TestAFullRefreshAlsoLooksUpARandomKey(t *testing.T) {
	random := routing.Key{9}
	for _, full := range []bool{false, true} {
		net := &fakeNet{outbound: 1}
		cfg := DefaultConfig()
		cfg.TargetOutbound = 1
		b := testBootstrapper(t, cfg, net)
		b.run(context.Background(), stepPlan{refresh: true, randomLookup: full, random: random})
		want := []routing.Key{routing.KeyOf(net.ID())}
		if full {
			want = append(want, random)
		}
		if !slices.Equal(net.targets, want) {
			t.Fatalf("full %v: looked up %x, want %x", full, net.targets, want)
		}
	}
}

// A node short of its target whose table is empty, with bootnodes to go back to, is lost: the step says so, and
// the next joins again.
func TestANodeWithAnEmptyTableIsLost(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{testBootnode}, 1
	b := testBootstrapper(t, cfg, &fakeNet{})
	if !b.run(context.Background(), stepPlan{}).lost {
		t.Fatal("a step with an empty table and a bootnode: not lost, want lost")
	}
	b.joined = true
	b.busy = true
	b.receive(&stepDone{lost: true})
	if b.joined {
		t.Fatal("joined after a lost step, want a join at the next step")
	}
}

// A join's own step, short of the target with nobody to dial, is not counted as stranded (strandedStep: the join
// leaves the rejoin schedule as it is); a later step in that state is.
func TestAJoinsOwnStepIsNotStranded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{testBootnode}, 8
	net := &fakeNet{outbound: 1, entries: []routing.Entry{testEntry}, fromRes: routing.LookupResult{Closest: []routing.Entry{testEntry}}}
	b := testBootstrapper(t, cfg, net)
	skip := map[session.NodeID]bool{testEntry.ID: true} // in its dial backoff: nobody to dial
	if d := b.run(context.Background(), stepPlan{join: true, skip: skip}); d.stranded {
		t.Fatal("the join's step counted as stranded")
	}
	if d := b.run(context.Background(), stepPlan{skip: skip}); !d.stranded {
		t.Fatal("a step short of the target with nobody to dial: not stranded, want stranded")
	}
}

// The first rejoin of a stranded node comes a step interval after it was first found stranded, not at the next
// stranded step; once due, the node is no longer joined. A node without bootnodes has nothing to rejoin through and
// stays joined.
func TestAStrandedNodeRejoinsAnIntervalAfterItWasFirstStranded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bootnodes = []session.PeerAddr{testBootnode}
	b := testBootstrapper(t, cfg, &fakeNet{})
	b.joined = true
	b.receive(&stepDone{stranded: true})
	b.receive(&stepDone{stranded: true})
	if !b.joined {
		t.Fatal("rejoining at the second stranded step, want an interval (an hour) after the first")
	}
	b.rejoinAt = time.Now().Add(-time.Millisecond) // the interval has passed
	b.receive(&stepDone{stranded: true})
	if b.joined {
		t.Fatal("still joined when the rejoin was due")
	}

	cfg.Bootnodes = nil
	b = testBootstrapper(t, cfg, &fakeNet{})
	b.joined = true
	for range 3 {
		b.receive(&stepDone{stranded: true})
		b.rejoinAt = time.Now().Add(-time.Millisecond)
	}
	if !b.joined {
		t.Fatal("a stranded node without bootnodes rejoining, want it joined")
	}
}

// A failed candidate waits at least DialBackoffBase (Config: retried after a growing delay from DialBackoffBase):
// the backoff's first draw alone can be near zero.
func TestAFailedCandidateWaitsAtLeastTheBackoffBase(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DialBackoffBase, cfg.DialBackoffMax = time.Hour, 2*time.Hour
	b := testBootstrapper(t, cfg, &fakeNet{})
	id := session.NodeID{7}
	start := time.Now()
	b.receive(&stepDone{failed: []session.NodeID{id}})
	if cb := b.backoff[id]; cb == nil || cb.until.Before(start.Add(time.Hour)) {
		t.Fatalf("the failed candidate's backoff: %+v, want it to end an hour from now at least", cb)
	}
}

// A stopped or restarted incarnation (its context cancelled) starts no more steps, whatever reaches it.
func TestAStoppedBootstrapperStartsNoStep(t *testing.T) {
	b := testBootstrapper(t, DefaultConfig(), &fakeNet{})
	b.cancel()
	b.Receive(stepContext{msg: &tick{from: b}})
	if b.busy {
		t.Fatal("a step started after the incarnation's end")
	}
}

// A join's way in (Config.Bootnodes, package doc): a node whose bootnodes are out of reach is joined all the same
// when it keeps an outbound connection, and so is a node that has no bootnode to wait for.
func TestAJoinNeedsNoBootnodeWithAnOutboundPeerOrWithoutBootnodes(t *testing.T) {
	found := routing.LookupResult{Closest: []routing.Entry{testEntry}}
	cfg := DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{testBootnode}, 1
	net := &fakeNet{outbound: 1, connectErr: errors.New("bootnode out of reach"), fromRes: found}
	if !testBootstrapper(t, cfg, net).run(context.Background(), stepPlan{join: true}).joined {
		t.Fatal("a node with an outbound peer and its bootnode out of reach: not joined, want joined")
	}
	cfg.Bootnodes = nil
	if !testBootstrapper(t, cfg, &fakeNet{}).run(context.Background(), stepPlan{join: true}).joined {
		t.Fatal("a node without bootnodes nor peer store: not joined, want joined")
	}
}

// A bootnode that answered is warned of again when it is out of reach once more: the warning once is for each
// outage, not for the bootnode's life.
func TestABootnodeThatAnsweredIsWarnedOfAgainWhenItFails(t *testing.T) {
	var logs bytes.Buffer // the steps run here, one after the other
	cfg := DefaultConfig()
	cfg.Bootnodes, cfg.TargetOutbound = []session.PeerAddr{testBootnode}, 0
	net := &fakeNet{}
	b := testBootstrapper(t, cfg, net)
	b.log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	for _, err := range []error{errors.New("down"), errors.New("down"), nil, errors.New("down again")} {
		net.connectErr = err
		b.join(context.Background())
	}
	if warns := strings.Count(logs.String(), `"level":"warn"`); warns != 2 {
		t.Fatalf("%d warnings over two outages of the bootnode, want 2:\n%s", warns, logs.String())
	}
}

// A candidate whose backoff ended more than DialBackoffMax ago is forgotten (the map stays bounded by the
// candidates failing lately); one still waiting is kept.
func TestALongOverBackoffIsForgotten(t *testing.T) {
	cfg := DefaultConfig()
	b := testBootstrapper(t, cfg, &fakeNet{})
	old, waiting := session.NodeID{7}, session.NodeID{8}
	b.backoff[old] = &candidateBackoff{b: session.NewBackoff(cfg.DialBackoffBase, cfg.DialBackoffMax, 0, b.rng),
		until: time.Now().Add(-2 * cfg.DialBackoffMax)}
	b.backoff[waiting] = &candidateBackoff{b: session.NewBackoff(cfg.DialBackoffBase, cfg.DialBackoffMax, 0, b.rng),
		until: time.Now().Add(time.Minute)}
	b.receive(&stepDone{})
	if _, ok := b.backoff[old]; ok {
		t.Fatal("a backoff over for twice DialBackoffMax is still held")
	}
	if _, ok := b.backoff[waiting]; !ok {
		t.Fatal("a backoff still running was forgotten")
	}
}

// The step interval may be as short as 1 ms (Validate refuses less).
func TestAStepIntervalOfOneMillisecondIsAccepted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interval = time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Interval of 1ms refused: %v", err)
	}
}

// The full interval's waits are drawn from [1/2, 3/2] of it (Config.RefreshInterval), over the whole range.
func TestTheRefreshJitterSpansHalfToThreeHalves(t *testing.T) {
	b := testBootstrapper(t, DefaultConfig(), &fakeNet{})
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d := b.jittered(time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 500*time.Millisecond || hi > 1500*time.Millisecond || lo > 550*time.Millisecond || hi < 1450*time.Millisecond {
		t.Fatalf("1000 waits of a 1s interval drawn from [%v, %v], want about [500ms, 1.5s]", lo, hi)
	}
}

// A candidate the step connected to is out of its dial backoff: a later failure starts it afresh, where it used to
// resume from the delay its earlier failures had grown to.
func TestAReachedCandidatesBackoffStartsAfresh(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DialBackoffBase, cfg.DialBackoffMax = time.Second, time.Hour
	b := testBootstrapper(t, cfg, &fakeNet{})
	id := session.NodeID{7}
	for range 3 {
		b.receive(&stepDone{failed: []session.NodeID{id}})
	}
	if b.backoff[id] == nil || b.backoff[id].b.Attempts() != 3 {
		t.Fatal("three failures not counted in the candidate's backoff")
	}
	b.receive(&stepDone{connected: []session.NodeID{id}})
	if cb := b.backoff[id]; cb != nil {
		t.Fatalf("a reached candidate still backs off (%d attempts)", cb.b.Attempts())
	}
}

// A dial the step's end cuts off is no failure of its candidate's, and the step dials no other after it: a step
// that timed out used to put the candidate it was dialing into the dial backoff.
func TestADialTheStepsEndCutsOffIsNoFailure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TargetOutbound = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	net := &endingNet{fakeNet: &fakeNet{}, end: cancel}
	entries := []routing.Entry{testEntry, {ID: session.NodeID{9}, Addr: "192.0.2.9:4001"}}
	failed, connected, dialed := testBootstrapper(t, cfg, net).topUp(ctx, entries, nil, rand.New(rand.NewPCG(1, 2)))
	if len(failed) != 0 || len(connected) != 0 || dialed != 1 {
		t.Fatalf("a step that ended in its first dial: %d failed, %d connected, %d dialed; want none, none, 1",
			len(failed), len(connected), dialed)
	}
	_, connected, _ = testBootstrapper(t, cfg, &fakeNet{}).topUp(context.Background(), entries, nil, rand.New(rand.NewPCG(1, 2)))
	if len(connected) != 2 {
		t.Fatalf("%d candidates reported connected, want 2", len(connected))
	}
}

// endingNet is a fakeNet whose dials end the step: Connect calls end and fails with the context's error.
type endingNet struct {
	*fakeNet
	end context.CancelFunc
}

func (n *endingNet) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	_ = n.fakeNet.Connect(ctx, addr, keep)
	n.end()
	return ctx.Err()
}
