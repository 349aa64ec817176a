package routing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/session"
)

// stallingNet is a Network whose requests hang until their context ends and then until release is closed (a slow
// transport), so that a lookup stays in flight while its actor stops. called receives each peer asked.
type stallingNet struct {
	id      session.NodeID
	called  chan session.NodeID
	release chan struct{}
}

func (n *stallingNet) ID() session.NodeID { return n.id }
func (n *stallingNet) Request(ctx context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	select {
	case n.called <- peer:
	default:
	}
	<-ctx.Done()
	<-n.release
	return nil, ctx.Err()
}
func (n *stallingNet) AddAddress(session.NodeID, string)                   {}
func (n *stallingNet) Ban(session.NodeID, time.Duration, string) error     { return nil }
func (n *stallingNet) SubscribeEvents(func(proto.Message)) (func(), error) { return func() {}, nil }

// protoactor hands a stopping actor user messages while its children stop; a lookup asked for then is refused,
// starts no child, and the actor still stops. It used to write to the lookups map Stopping had set to nil: a panic
// that left the actor stopping for good, and the lookup unanswered.
func TestLookupRequestedWhileTheActorStopsIsRefused(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	var mu sync.Mutex
	var failures []any
	guardian := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
		mu.Lock()
		failures = append(failures, reason)
		mu.Unlock()
		return actor.StopDirective
	})
	net := &stallingNet{id: session.NodeID{1}, called: make(chan session.NodeID, 4), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(net.release) })
	defer release()
	cfg := DefaultConfig()
	cfg.RequestTimeout = 3 * time.Second
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props.Configure(actor.WithGuardian(guardian)))

	seed := Entry{ID: session.NodeID{2}, Addr: "198.51.100.1:4001"}
	first := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: first})
	awaitRequest(t, net)
	stopped := sys.Root.StopFuture(pid)
	select {
	case r := <-first: // Stopping ran; the lookup's actor is stopping, its request hanging
		if !errors.Is(r.Err, ErrStopped) {
			t.Fatalf("the lookup in flight at the stop: %+v, want ErrStopped", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the lookup in flight after Stop")
	}
	second := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: second})
	select {
	case r := <-second:
		if !errors.Is(r.Err, ErrStopped) {
			t.Fatalf("the lookup asked while stopping: %+v, want ErrStopped", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lookup asked while the actor stopped got no answer")
	}
	release()
	if err := stopped.Wait(); err != nil {
		t.Fatalf("the actor did not finish stopping: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("the routing actor failed while stopping: %v", failures[0])
	}
}

// startStalling spawns a routing actor over a stallingNet whose hanging requests return once their context ends
// (release closed) and returns the actor, the net and the seed entry to start lookups from.
func startStalling(t *testing.T, cfg Config) (*actor.ActorSystem, *actor.PID, *stallingNet, Entry) {
	t.Helper()
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	net := &stallingNet{id: session.NodeID{1}, called: make(chan session.NodeID, 16), release: make(chan struct{})}
	close(net.release)
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return sys, pid, net, Entry{ID: session.NodeID{2}, Addr: "198.51.100.1:4001"}
}

// awaitLookup waits for a lookup's one answer.
func awaitLookup(t *testing.T, reply <-chan LookupResult, what string) LookupResult {
	t.Helper()
	select {
	case r := <-reply:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no answer", what)
		return LookupResult{}
	}
}

// A lookup whose caller gave up (LookupRequest.Ctx done) cancels its requests and ends, instead of asking on until
// every request timed out.
func TestLookupEndsWhenItsCallerGivesUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RequestTimeout = time.Minute
	sys, pid, net, seed := startStalling(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Ctx: ctx, Reply: reply})
	awaitRequest(t, net)
	cancel()
	r := awaitLookup(t, reply, "the lookup whose caller gave up")
	if r.Duration > 30*time.Second || r.Queried != 1 {
		t.Fatalf("the lookup went on after its caller gave up: %+v", r)
	}
}

// At most MaxLookups lookups run at once; one more fails at once with ErrTooManyLookups.
func TestLookupsBeyondMaxLookupsAreRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RequestTimeout = time.Minute
	cfg.MaxLookups = 1
	sys, pid, net, seed := startStalling(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Ctx: ctx, Reply: first})
	awaitRequest(t, net)
	second := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Reply: second})
	if r := awaitLookup(t, second, "the lookup beyond MaxLookups"); !errors.Is(r.Err, ErrTooManyLookups) {
		t.Fatalf("the lookup beyond MaxLookups: %+v, want ErrTooManyLookups", r)
	}
	cancel()
	awaitLookup(t, first, "the first lookup")
	third := make(chan LookupResult, 1) // room again once the first ended
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(seed.ID), Seeds: []Entry{seed}, Ctx: ctx, Reply: third})
	if r := awaitLookup(t, third, "a lookup after the first ended"); errors.Is(r.Err, ErrTooManyLookups) {
		t.Fatalf("a lookup after the first ended: %+v", r)
	}
}

// awaitRequest waits until a lookup asked net something.
func awaitRequest(t *testing.T, net *stallingNet) {
	t.Helper()
	select {
	case <-net.called:
	case <-time.After(5 * time.Second):
		t.Fatal("the lookup sent no request")
	}
}

// failingCtx is a context whose Done panics: a lookup asked under it makes the routing actor fail while it starts
// the lookup (the lookup actor's producer derives its context from it), as a bug there would.
type failingCtx struct{ context.Context }

func (failingCtx) Done() <-chan struct{} { panic("test: a bug while starting a lookup") }

// The lookup the routing actor fails on is answered, with ErrRestarted when its supervisor restarts the actor and
// ErrStopped when it gives up on it, as the relay answers the request it fails on: neither Restarting nor Stopping
// knew of it, and its caller waited for its context.
func TestTheLookupTheRoutingActorFailsOnIsAnswered(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	props, err := NewActorProps(DefaultConfig(), newEventNet())
	if err != nil {
		t.Fatal(err)
	}
	restartOnce := actor.NewOneForOneStrategy(1, time.Minute, actor.DefaultDecider)
	pid := sys.Root.Spawn(props.Clone(actor.WithGuardian(restartOnce))) // stopped by its supervisor at the end
	seed := Entry{ID: session.NodeID{9}, Addr: "198.51.100.1:4001"}
	for _, want := range []error{ErrRestarted, ErrStopped} {
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: Key{1}, Seeds: []Entry{seed}, Ctx: failingCtx{context.Background()}, Reply: reply})
		select {
		case r := <-reply:
			if !errors.Is(r.Err, want) {
				t.Fatalf("the lookup the actor failed on: %v, want %v", r.Err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the lookup the actor failed on has no answer (want %v)", want)
		}
	}
}
