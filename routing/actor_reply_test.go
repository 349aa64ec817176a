package routing

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/session"
)

// failureLog is a guardian strategy that records its children's failures and stops them.
type failureLog struct {
	mu       sync.Mutex
	failures []any
}

func (f *failureLog) strategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		f.mu.Lock()
		f.failures = append(f.failures, reason)
		f.mu.Unlock()
		return actor.StopDirective
	})
}

func (f *failureLog) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		t.Fatalf("the routing actor failed: %v", f.failures[0])
	}
}

// A Reply channel that is nil, unbuffered with nobody reading or full neither blocks nor fails the routing actor:
// the request is refused or its answer dropped, and the next requests are answered.
func TestRepliesNeverBlockTheActor(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	var fl failureLog
	net := &stallingNet{id: session.NodeID{1}, called: make(chan session.NodeID, 4), release: make(chan struct{})}
	close(net.release)
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props.Configure(actor.WithGuardian(fl.strategy())))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	sys.Root.Send(pid, &SnapshotRequest{})                               // nil
	sys.Root.Send(pid, &SnapshotRequest{Reply: make(chan Snapshot)})     // unbuffered, never read
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(session.NodeID{3})}) // nil
	full := make(chan LookupResult, 1)
	full <- LookupResult{Err: errors.New("the caller's own")}
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(session.NodeID{3}), Reply: full}) // no room: ErrNoPeers dropped

	reply := make(chan Snapshot, 1)
	sys.Root.Send(pid, &SnapshotRequest{Reply: reply})
	select {
	case s := <-reply:
		// The lookup with a nil Reply was refused before it counted; the one whose Reply was full failed.
		if s.Stats.Lookups != 1 || s.Stats.LookupFailures != 1 {
			t.Fatalf("lookups %d, failures %d: want one, failed (the nil Reply's refused)", s.Stats.Lookups, s.Stats.LookupFailures)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot after requests with nil, unread and full Reply channels: the actor is blocked")
	}
	if r := <-full; r.Err == nil || errors.Is(r.Err, ErrNoPeers) || len(full) != 0 {
		t.Fatalf("the full Reply channel holds %+v and %d more, want only the caller's own value", r, len(full))
	}
	lookup := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(session.NodeID{3}), Reply: lookup})
	if r := awaitLookup(t, lookup, "a lookup after the bad Reply channels"); !errors.Is(r.Err, ErrNoPeers) {
		t.Fatalf("a lookup with an empty table: %+v, want ErrNoPeers", r)
	}
	fl.check(t)
}
