package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// TestNewActorSystemKeepsASmallRegistry checks that NewActorSystem's process registry is the small one and that
// everything resolves through it: the processes the system registered on creation, actors and futures.
func TestNewActorSystemKeepsASmallRegistry(t *testing.T) {
	sys := NewActorSystem(zerolog.Nop())
	defer sys.Shutdown()
	if got := len(sys.ProcessRegistry.LocalPIDs.LocalPIDs); got != registryBuckets {
		t.Fatalf("registry of %d maps, want %d", got, registryBuckets)
	}
	for _, id := range []string{"deadletter", "eventstream"} {
		if _, ok := sys.ProcessRegistry.GetLocal(id); !ok {
			t.Fatalf("%s is not registered", id)
		}
	}
	echo := actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok {
			c.Respond(s + "!")
		}
	})
	var pids []*actor.PID
	for range 100 {
		pids = append(pids, sys.Root.Spawn(echo))
	}
	for i, pid := range pids {
		reply, err := sys.Root.RequestFuture(pid, "hi", 5*time.Second).Result() // a future is a registered process too
		if err != nil || reply != "hi!" {
			t.Fatalf("actor %d: reply %v, %v", i, reply, err)
		}
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, ok := sys.ProcessRegistry.GetLocal(pid.Id); ok {
			t.Fatalf("actor %d is still registered after it stopped", i)
		}
	}
}
