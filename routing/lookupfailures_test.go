package routing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// Every lookup the routing actor answers with an error counts in LookupFailures, whatever ended it: the actor's
// teardown (its failure or stop), its failure while handling the request, the stop of the lookup's child actor.
// Until stop 54 only the lookups that ended on their own, and the refusals, were counted (an audit's finding).
func TestEveryLookupAnsweredWithAnErrorCountsAsFailed(t *testing.T) {
	cases := []struct {
		name string
		end  func(a *routingActor, req *LookupRequest)
		want error
	}{
		{"teardown", func(a *routingActor, req *LookupRequest) {
			a.lookups["child"] = req
			a.teardown(ErrRestarted)
		}, ErrRestarted},
		{"failure while handling", func(a *routingActor, req *LookupRequest) {
			a.handling = req
			a.failHandling(ErrStopped)
		}, ErrStopped},
		{"child actor stopped", func(a *routingActor, req *LookupRequest) {
			a.lookups["child"] = req
			a.lookupActorStopped("child")
		}, ErrLookupActorStopped},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rig := newRevalidationRig(t, 540+uint64(i))
			a := rig.actor(t, &stallingNet{id: rig.self})
			a.stats.Lookups = 1 // startLookup counted it
			reply := make(chan LookupResult, 1)
			c.end(a, &LookupRequest{Target: Key{1}, Reply: reply})
			if r := awaitLookup(t, reply, c.name); !errors.Is(r.Err, c.want) {
				t.Fatalf("answered %v, want %v", r.Err, c.want)
			}
			if a.stats.LookupFailures != 1 {
				t.Fatalf("LookupFailures %d after a lookup answered with %v, want 1", a.stats.LookupFailures, c.want)
			}
		})
	}
}

// A lookup in flight when the actor stops and one asked while it stops are both answered ErrStopped, and both
// count in Lookups and LookupFailures (the second counted in neither before stop 54).
func TestLookupsEndedByTheActorsStopCountAsFailed(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := &stallingNet{id: session.NodeID{1}, called: make(chan session.NodeID, 4), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(net.release) })
	defer release()
	cfg := DefaultConfig()
	cfg.RequestTimeout = 3 * time.Second
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	seed := Entry{ID: session.NodeID{2}, Addr: "198.51.100.1:4001"}
	first := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: first})
	awaitRequest(t, net)
	stopped := sys.Root.StopFuture(pid)
	if r := awaitLookup(t, first, "the lookup in flight at the stop"); !errors.Is(r.Err, ErrStopped) {
		t.Fatalf("the lookup in flight at the stop: %v, want ErrStopped", r.Err)
	}
	second := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: second})
	if r := awaitLookup(t, second, "the lookup asked while stopping"); !errors.Is(r.Err, ErrStopped) {
		t.Fatalf("the lookup asked while stopping: %v, want ErrStopped", r.Err)
	}
	// The lookup's child still stops (its request hangs until release): the actor answers snapshots meanwhile.
	snap := make(chan Snapshot, 1)
	sys.Root.Send(pid, &SnapshotRequest{Reply: snap})
	st := poll.Take(t, snap, 1, 5*time.Second, "a snapshot while stopping")[0].Stats
	if st.Lookups != 2 || st.LookupFailures != 2 {
		t.Fatalf("Lookups %d, LookupFailures %d; want 2 and 2", st.Lookups, st.LookupFailures)
	}
	release()
	if err := stopped.Wait(); err != nil {
		t.Fatal(err)
	}
}

// A lookup answered with ErrRestarted (the routing actor failed under it) counts as failed (an audit's scratch test).
func TestALookupEndedByARestartCountsAsFailed(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := newEventNet()
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe()
	restart := actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
	pid := sys.Root.Spawn(props.Clone(actor.WithGuardian(restart), actor.WithReceiverMiddleware(p.middleware)))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	seed := Entry{ID: session.NodeID{9}, Addr: "198.51.100.1:4001"}
	lookup := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: lookup})
	poll.Until(t, 5*time.Second, func() bool { return net.requests.Load() >= 1 }, "the lookup's request")
	sys.Root.Send(pid, &failNow{})
	if r := awaitLookup(t, lookup, "the lookup"); !errors.Is(r.Err, ErrRestarted) {
		t.Fatalf("got %v, want ErrRestarted", r.Err)
	}
	if st := statsOf(t, sys, pid); st.Lookups != 1 || st.LookupFailures != 1 {
		t.Fatalf("Lookups %d, LookupFailures %d: the lookup ended by the restart is not counted as failed", st.Lookups, st.LookupFailures)
	}
}

// A lookup whose caller gave up before it sent its first request answered nobody: it fails with ErrNoAnswer, as one
// given up with its requests in flight does. It succeeded with its starting points, never asked, as if found (a
// mutation audit's finding); Node.lookup passed that on whenever its select took the reply over the context's end.
func TestALookupGivenUpBeforeItsFirstRequestFailsWithErrNoAnswer(t *testing.T) {
	sys, pid, _, seed := startStalling(t, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Ctx: ctx, Reply: reply})
	if r := awaitLookup(t, reply, "the lookup given up at once"); !errors.Is(r.Err, ErrNoAnswer) || r.Queried != 0 {
		t.Fatalf("a lookup given up before it asked anybody: Err %v, Queried %d; want ErrNoAnswer, 0", r.Err, r.Queried)
	}
	if s := statsOf(t, sys, pid); s.LookupFailures != 1 {
		t.Fatalf("LookupFailures %d, want 1", s.LookupFailures)
	}
}
