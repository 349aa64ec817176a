package routing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// eventNet is a Network that publishes peer events to its live subscriptions and whose requests hang until their
// context ends (a peer that never answers).
type eventNet struct {
	id                 session.NodeID
	mu                 sync.Mutex
	subs               map[int]func(proto.Message)
	next               int
	requests, returned atomic.Int64
}

func newEventNet() *eventNet {
	return &eventNet{id: session.NodeID{1}, subs: make(map[int]func(proto.Message))}
}

func (n *eventNet) ID() session.NodeID                              { return n.id }
func (n *eventNet) AddAddress(session.NodeID, string)               {}
func (n *eventNet) Ban(session.NodeID, time.Duration, string) error { return nil }

func (n *eventNet) Request(ctx context.Context, _ session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	n.requests.Add(1)
	defer n.returned.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (n *eventNet) SubscribeEvents(fn func(proto.Message)) (func(), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.next
	n.next++
	n.subs[id] = fn
	return sync.OnceFunc(func() {
		n.mu.Lock()
		delete(n.subs, id)
		n.mu.Unlock()
	}), nil
}

// live is the number of subscriptions not ended.
func (n *eventNet) live() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

// emit calls every live subscription with ev.
func (n *eventNet) emit(ev proto.Message) {
	n.mu.Lock()
	fns := make([]func(proto.Message), 0, len(n.subs))
	for _, fn := range n.subs {
		fns = append(fns, fn)
	}
	n.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// probe is a receiver middleware that looks into the routing actor from its own goroutine: it fails the actor on
// *failNow, answers *inspect, records the delivery of every revalidation tick and exchange result, and whether
// inFlight ever went below zero. With save set, every incarnation writes its peer store with it; every incarnation
// adds the records of start to its table as it starts (in the turn of Started, before any tick is handled).
type probe struct {
	ticks     chan time.Time
	exchanges atomic.Int64
	negative  atomic.Bool
	save      saveFunc
	start     []*messages.NodeRecord
}

type (
	failNow struct{}
	inspect struct{ reply chan<- actorView }
	// actorView is what inspect tells of the actor instance that answers.
	actorView struct {
		instance *routingActor
		inFlight int
		local    *messages.NodeRecord
	}
)

func newProbe() *probe { return &probe{ticks: make(chan time.Time, 1024)} }

func (p *probe) middleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch m := env.Message.(type) {
		case *actor.Started:
			if p.save != nil {
				c.Actor().(*routingActor).save = p.save
			}
		case *failNow:
			panic("probe: a test failure")
		case *inspect:
			a := c.Actor().(*routingActor)
			m.reply <- actorView{instance: a, inFlight: a.inFlight, local: a.local}
			return
		case *revalidateTick:
			select {
			case p.ticks <- time.Now():
			default:
			}
		case *exchangeDone:
			p.exchanges.Add(1)
		}
		next(c, env)
		if _, ok := env.Message.(*actor.Started); ok && len(p.start) > 0 {
			next(c, &actor.MessageEnvelope{Message: &AddRecords{Records: p.start}})
		}
		if a, ok := c.Actor().(*routingActor); ok && a.inFlight < 0 {
			p.negative.Store(true)
		}
	}
}

// view asks the actor's current instance for its state.
func (p *probe) view(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) actorView {
	t.Helper()
	reply := make(chan actorView, 1)
	sys.Root.Send(pid, &inspect{reply: reply})
	select {
	case v := <-reply:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("the routing actor does not answer")
		return actorView{}
	}
}

// A routing actor restarted after failures ends what its failed incarnations ran: their peer-event subscriptions,
// revalidation timers and exchanges (whose results the new incarnation must not count: its inFlight would go below
// zero), and answers their lookups. Before, each restart left one more subscription and one more revalidation chain
// running, and the old exchanges' results drove the new incarnation's inFlight negative.
func TestRestartEndsTheFailedIncarnation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := newEventNet()
	cfg := DefaultConfig()
	cfg.RevalidateInterval = 20 * time.Millisecond
	cfg.RequestTimeout = 2 * time.Second
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe()
	restart := actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
	pid := sys.Root.Spawn(props.Clone(actor.WithGuardian(restart), actor.WithReceiverMiddleware(p.middleware)))
	stopped := false
	defer func() {
		if !stopped {
			_ = sys.Root.StopFuture(pid).Wait()
		}
	}()

	first := p.view(t, sys, pid).instance
	for i := byte(0); i < 3; i++ { // three exchanges in flight, with peers that never answer
		net.emit(&messages.PeerConnected{PeerId: (&session.NodeID{10 + i})[:], Outbound: true})
	}
	poll.Until(t, 5*time.Second, func() bool { return net.requests.Load() == 3 }, "three exchanges")
	seed := Entry{ID: session.NodeID{9}, Addr: "198.51.100.1:4001"}
	lookup := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: lookup})
	poll.Until(t, 5*time.Second, func() bool { return net.requests.Load() == 4 }, "the lookup's request")

	sys.Root.Send(pid, &failNow{})
	if r := awaitLookup(t, lookup, "the lookup in flight at the failure"); !errors.Is(r.Err, ErrRestarted) {
		t.Fatalf("the lookup in flight at the failure: %+v, want ErrRestarted", r)
	}
	poll.Until(t, 5*time.Second, func() bool { return p.exchanges.Load() == 3 }, "the failed incarnation's exchanges to end")
	last := p.view(t, sys, pid)
	if last.instance == first {
		t.Fatal("the actor was not restarted")
	}
	if last.inFlight != 0 || p.negative.Load() {
		t.Fatalf("after the restart: %d exchanges in flight (negative at some point: %v), want 0", last.inFlight, p.negative.Load())
	}
	for range 2 {
		sys.Root.Send(pid, &failNow{})
		v := p.view(t, sys, pid)
		if v.instance == last.instance {
			t.Fatal("the actor was not restarted")
		}
		last = v
	}
	if n := net.live(); n != 1 {
		t.Fatalf("%d peer-event subscriptions after 3 restarts, want 1", n)
	}
	if r, q := net.returned.Load(), net.requests.Load(); r != q {
		t.Fatalf("%d of %d requests still running after the restarts", q-r, q)
	}

	// One revalidation chain: its ticks come at least RevalidateInterval/2 apart (the shortest jittered wait). One
	// tick of a failed incarnation may have been on its way; 3 more chains would make them 4 times as frequent.
	for len(p.ticks) > 0 {
		<-p.ticks
	}
	const k = 20
	times := poll.Take(t, p.ticks, k, 5*time.Second, "revalidation ticks")
	if span, min := times[k-1].Sub(times[0]), (k-2)*cfg.RevalidateInterval/2; span < min {
		t.Fatalf("%d revalidation ticks in %v, want at least %v apart: more than one revalidation runs", k, span, min)
	}
	if p.negative.Load() {
		t.Fatal("inFlight went below zero")
	}

	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if n := net.live(); n != 0 {
		t.Fatalf("%d peer-event subscriptions after the stop, want 0", n)
	}
}

// tableIDs asks the routing actor for its table's entries and returns their ids.
func tableIDs(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) map[session.NodeID]bool {
	t.Helper()
	reply := make(chan Snapshot, 1)
	sys.Root.Send(pid, &SnapshotRequest{Reply: reply})
	snap := poll.Take(t, reply, 1, 5*time.Second, "a snapshot")[0]
	ids := make(map[session.NodeID]bool)
	for _, e := range snap.Entries {
		ids[e.ID] = true
	}
	return ids
}

// statsOf returns the routing actor's counters.
func statsOf(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) Stats {
	t.Helper()
	reply := make(chan Snapshot, 1)
	sys.Root.Send(pid, &SnapshotRequest{Reply: reply})
	return poll.Take(t, reply, 1, 5*time.Second, "a snapshot")[0].Stats
}

// A routing actor restarted after a failure starts from the records its failed incarnation's table held, and keeps
// the node's own record, which the node sends once. The new incarnation started with an empty table and no record
// of its own: it answered FindNode without its sender record, and took loopback addresses from others' records
// at a node reachable off its host.
func TestRestartKeepsTheTableAndTheLocalRecord(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	props, err := NewActorProps(DefaultConfig(), newEventNet())
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe()
	restart := actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
	pid := sys.Root.Spawn(props.Clone(actor.WithGuardian(restart), actor.WithReceiverMiddleware(p.middleware)))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	local, err := NewRecord(identity(t, 100), 1, []string{"203.0.113.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(pid, &SetLocalRecord{Record: local})
	var recs []*messages.NodeRecord
	want := make(map[session.NodeID]bool)
	for i := 1; i <= 5; i++ {
		x := identity(t, byte(i))
		r, err := NewRecord(x, 1, []string{fmt.Sprintf("198.51.%d.1:4001", i)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		want[x.NodeID()] = true
	}
	forged := &messages.NodeRecord{Id: identity(t, 60).NodeID().Bytes(), Seq: 1, Addrs: []string{"198.51.60.1:4001"},
		Signature: make([]byte, 64)}
	sys.Root.Send(pid, &AddRecords{Records: append(recs, forged)})
	if got := tableIDs(t, sys, pid); !maps.Equal(got, want) {
		t.Fatalf("table before the failure: %v, want %v", got, want)
	}
	if bad := statsOf(t, sys, pid).BadRecords; bad != 1 {
		t.Fatalf("BadRecords before the failure: %d, want 1", bad)
	}
	first := p.view(t, sys, pid).instance

	sys.Root.Send(pid, &failNow{})
	v := p.view(t, sys, pid)
	if v.instance == first {
		t.Fatal("the actor was not restarted")
	}
	if got := tableIDs(t, sys, pid); !maps.Equal(got, want) {
		t.Fatalf("table after the restart: %v, want %v", got, want)
	}
	if v.local != local {
		t.Fatalf("local record after the restart: %v, want the one set before", v.local)
	}
	// The counters go on (exported as Prometheus counters, they must never go down): they started from zero.
	if bad := statsOf(t, sys, pid).BadRecords; bad != 1 {
		t.Fatalf("BadRecords after the restart: %d, want the 1 of before", bad)
	}
	loop := identity(t, 50)
	r, err := NewRecord(loop, 1, []string{"127.0.0.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(pid, &AddRecords{Records: []*messages.NodeRecord{r}})
	if tableIDs(t, sys, pid)[loop.NodeID()] {
		t.Fatal("after the restart, a node off its host took a loopback address from a record")
	}
}
