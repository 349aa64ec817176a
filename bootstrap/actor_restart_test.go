package bootstrap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// heldNet is a Network with no peers whose table copies (one per step of a node below its outbound target) wait
// for their context or for release, so that a step stays in progress; it counts them and how many ran at once.
type heldNet struct {
	release             chan struct{}
	calls               atomic.Int64
	mu                  sync.Mutex
	running, maxRunning int
}

func (n *heldNet) ID() session.NodeID { return session.NodeID{1} }
func (n *heldNet) Connect(context.Context, session.PeerAddr, bool) error {
	return errors.New("no peers")
}
func (n *heldNet) Connected(session.NodeID) bool         { return false }
func (n *heldNet) TransientOutbound(session.NodeID) bool { return false }
func (n *heldNet) OutboundCount() int                    { return 0 }
func (n *heldNet) AddRecords([]*messages.NodeRecord)     {}
func (n *heldNet) SetJoining(bool)                       {}
func (n *heldNet) FindClosest(context.Context, routing.Key) (routing.LookupResult, error) {
	return routing.LookupResult{}, routing.ErrNoPeers
}
func (n *heldNet) FindClosestFrom(context.Context, routing.Key, []session.PeerAddr) (routing.LookupResult, error) {
	return routing.LookupResult{}, routing.ErrNoPeers
}

func (n *heldNet) RoutingTable(ctx context.Context) (routing.Snapshot, error) {
	n.calls.Add(1)
	n.mu.Lock()
	n.running++
	n.maxRunning = max(n.maxRunning, n.running)
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.running--
		n.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return routing.Snapshot{}, ctx.Err()
	case <-n.release:
		return routing.Snapshot{}, nil
	}
}

func (n *heldNet) most() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.maxRunning
}

// probe is a receiver middleware that fails the bootstrapper on *failNow, answers *inspect with the instance that
// receives it, and records when each tick is delivered.
type probe struct{ ticks chan time.Time }

type (
	failNow struct{}
	inspect struct{ reply chan<- *bootstrapper }
)

func (p *probe) middleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch m := env.Message.(type) {
		case *failNow:
			panic("probe: a test failure")
		case *inspect:
			m.reply <- c.Actor().(*bootstrapper)
			return
		case *tick:
			select {
			case p.ticks <- time.Now():
			default:
			}
		}
		next(c, env)
	}
}

func (p *probe) instance(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) *bootstrapper {
	t.Helper()
	reply := make(chan *bootstrapper, 1)
	sys.Root.Send(pid, &inspect{reply: reply})
	select {
	case b := <-reply:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("the bootstrapper does not answer")
		return nil
	}
}

// A bootstrapper restarted after failures ends its failed incarnation's step and timer: one step at a time runs, and
// one schedule. Before, the failed incarnation's step ran on beside the new one's, and its result armed a second
// timer chain in the new incarnation.
func TestRestartEndsTheFailedIncarnation(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := &heldNet{release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(net.release) })
	defer release()
	cfg := DefaultConfig()
	cfg.Interval, cfg.StepTimeout = 10*time.Millisecond, time.Minute
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{ticks: make(chan time.Time, 1024)}
	restart := actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
	pid := sys.Root.Spawn(props.Clone(actor.WithGuardian(restart), actor.WithReceiverMiddleware(p.middleware)))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	poll.Until(t, 5*time.Second, func() bool { return net.calls.Load() == 1 }, "the first step")
	last := p.instance(t, sys, pid)
	for i := int64(2); i <= 3; i++ {
		sys.Root.Send(pid, &failNow{})
		poll.Until(t, 5*time.Second, func() bool { return net.calls.Load() == i }, "the restarted incarnation's step")
		b := p.instance(t, sys, pid)
		if b == last {
			t.Fatal("the bootstrapper was not restarted")
		}
		last = b
	}
	if n := net.most(); n != 1 {
		t.Fatalf("%d steps ran at once across restarts, want 1", n)
	}

	// One schedule: a tick comes Interval after the step before ends, so ticks are at least Interval apart.
	release()
	for len(p.ticks) > 0 {
		<-p.ticks
	}
	const k = 20
	times := poll.Take(t, p.ticks, k, 5*time.Second, "ticks")
	if span, min := times[k-1].Sub(times[0]), (k-2)*cfg.Interval; span < min {
		t.Fatalf("%d ticks in %v, want at least %v apart: more than one schedule runs", k, span, min)
	}
	if n := net.most(); n != 1 {
		t.Fatalf("%d steps ran at once, want 1", n)
	}
}
