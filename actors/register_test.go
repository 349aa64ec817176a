package actors_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// Props that fail to spawn (a producer that panics, props with a guardian strategy) fail their Register alone.
// protoactor builds the actor on the protocol supervisor's goroutine, so the panic used to fail the supervisor:
// its restart stopped every protocol actor (peers then got UNKNOWN_PROTOCOL for healthy protocols), and Register
// waited for its reply until Close.
func TestRegisterOfPropsThatFailToSpawnFailsAlone(t *testing.T) {
	nw := testkit.NewNetwork(t, 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "good/1", echo())
	nw.Connect(0, 1)
	bad := map[string]*actor.Props{
		"a producer that panics": actor.PropsFromProducer(func() actor.Actor { panic("constructor failed") }),
		"a guardian strategy": actor.PropsFromFunc(func(actor.Context) {},
			actor.WithGuardian(actor.NewOneForOneStrategy(1, time.Second, actor.DefaultDecider))),
	}
	for name, props := range bad {
		errc := make(chan error, 1)
		go func() { _, err := b.Register("bad/1", props); errc <- err }()
		select {
		case err := <-errc:
			if !errors.Is(err, actors.ErrInvalidArgument) {
				t.Fatalf("Register of props with %s: %v, want ErrInvalidArgument", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Register of props with %s has not returned after 5s", name)
		}
		reply, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "good/1", wrapperspb.String("ab"))
		if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "ba" {
			t.Fatalf("after a Register of props with %s, the healthy protocol: %v %v", name, reply, err)
		}
	}
	if _, err := b.Register("bad/1", echo()); err != nil {
		t.Fatalf("the protocol once registered with good props: %v", err)
	}
}

// A Register racing Close either fails with ErrClosed or registers an actor that Close stops: the protocol
// supervisor, stopping, went on spawning actors that nothing stopped, and Close waited for them until protoactor's
// timeout (10 s).
func TestRegisterRacingCloseLeavesNoActorRunning(t *testing.T) {
	nw := testkit.NewNetwork(t, 1)
	n := nw.Nodes[0]
	var started, stopped atomic.Int64
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *actor.Started:
			started.Add(1)
		case *actor.Stopped:
			stopped.Add(1)
		}
	})
	var wg sync.WaitGroup
	var unexpected atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_, err := n.Register(fmt.Sprintf("q/%d/%d", g, i), props)
				if err != nil && !errors.Is(err, actors.ErrClosed) {
					unexpected.Store(err)
				}
			}
		}()
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return started.Load() >= 20 }, "some actors registered")
	_ = n.Close()
	wg.Wait()
	testkit.WaitFor(t, 5*time.Second, func() bool { return started.Load() == stopped.Load() },
		"every protocol actor started stopped (%d of %d)", stopped.Load(), started.Load())
	if err := unexpected.Load(); err != nil {
		t.Fatalf("a Register racing Close failed with %v, want ErrClosed", err)
	}
}

// An application that stops its protocol actor and waits for it to stop can register the protocol again at once:
// the supervisor, whose news of the stop may still be on its way, no longer refuses it as registered.
func TestRegisterRightAfterTheApplicationStoppedTheActor(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(i int, c *actors.Config) { c.DisableDiscovery = true }))
	n := nw.Nodes[0]
	for i := range 1000 {
		pid, err := n.Register("again/1", echo())
		if err != nil {
			t.Fatalf("round %d: Register right after the previous actor stopped: %v", i, err)
		}
		if err := n.ActorSystem().Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// A live registration is still refused.
	register(t, n, "again/1", echo())
	if _, err := n.Register("again/1", echo()); !errors.Is(err, actors.ErrProtocolRegistered) {
		t.Fatalf("Register of a protocol served: %v, want ErrProtocolRegistered", err)
	}
}
