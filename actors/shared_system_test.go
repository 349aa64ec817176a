package actors_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func TestNodesShareAnActorSystemWithoutSeeingEachOthersEvents(t *testing.T) {
	_, nw := sharedSystemNetwork(t, 3)
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	var mu sync.Mutex
	seen := map[session.NodeID]bool{}
	unsub, err := c.SubscribeEvents(func(m proto.Message) {
		if ev, ok := m.(*messages.PeerConnected); ok {
			id, _ := session.NodeIDFromBytes(ev.PeerId)
			mu.Lock()
			seen[id] = true
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	nw.Connect(0, 1)
	nw.Connect(2, 0)
	testkit.WaitFor(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return seen[a.ID()] }, "c saw its own connection")
	mu.Lock()
	if seen[b.ID()] {
		t.Error("c saw the connection between a and b: events leak between nodes of one actor system")
	}
	mu.Unlock()

	register(t, b, "echo/1", echo())
	if err := a.Close(); err != nil { // closing one node leaves the shared system to the others
		t.Fatal(err)
	}
	nw.Connect(2, 1)
	reply, err := c.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("abc"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "cba" {
		t.Fatalf("after another node closed: %v %v", reply, err)
	}
}

// A second node with a running node's identity on the same actor system fails to start with ErrIdentityInUse (its
// actors would take the first one's names), and the first one goes on.
func TestASecondNodeWithTheSameIdentityOnASharedSystemFailsToStart(t *testing.T) {
	system := actors.NewActorSystem(zerolog.Nop())
	defer system.Shutdown()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.ActorSystem = system
		cfg.DisableDiscovery = true
		if i == 0 {
			cfg.Identity = id
		}
	}))
	cfg := actors.DefaultConfig()
	cfg.Identity, cfg.ActorSystem, cfg.DisableDiscovery = id, system, true
	cfg.ListenAddr = "127.0.0.1:0"
	twin, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	if err := twin.Start(ctxTimeout(t, 5*time.Second)); !errors.Is(err, actors.ErrIdentityInUse) {
		t.Fatalf("Start of a second node with the same identity: %v, want ErrIdentityInUse", err)
	}
	register(t, nw.Nodes[1], "echo/1", echo())
	nw.Connect(0, 1)
	reply, err := nw.Nodes[0].Request(ctxTimeout(t, 5*time.Second), nw.Nodes[1].ID(), "echo/1", wrapperspb.String("abc"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "cba" {
		t.Fatalf("the first node after its twin's failed start: %v %v", reply, err)
	}
}

// Nodes given one Config.Buffers lend their connections' buffers from it, and a node without one keeps its own;
// messages larger than the pool's smallest class go both ways through shared and own pools alike.
func TestNodesShareABufferPool(t *testing.T) {
	bufs := session.NewBufferPool()
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i < 2 {
			cfg.Buffers = bufs
		}
	}))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	nw.Connect(0, 1)
	nw.Connect(2, 0)
	if got := a.ConnBuffers(b.ID()); got != bufs {
		t.Errorf("a's connection to b lends from %p, want the shared pool %p", got, bufs)
	}
	if got := b.ConnBuffers(a.ID()); got != bufs {
		t.Errorf("b's connection to a lends from %p, want the shared pool %p", got, bufs)
	}
	if got := a.ConnBuffers(c.ID()); got != bufs {
		t.Errorf("a's connection to c lends from %p, want the shared pool %p", got, bufs)
	}
	if got := c.ConnBuffers(a.ID()); got == nil || got == bufs {
		t.Errorf("c (no Config.Buffers) lends from %p, want a pool of its own", got)
	}
	register(t, a, "echo/1", echo())
	big := strings.Repeat("x", 40<<10)
	for _, n := range []*actors.Node{b, c} {
		reply, err := n.Request(ctxTimeout(t, 5*time.Second), a.ID(), "echo/1", wrapperspb.String(big))
		if err != nil || reply.(*wrapperspb.StringValue).GetValue() != big {
			t.Fatalf("echo of %d bytes: %v", len(big), err)
		}
	}
}

// On a shared actor system, Close stops the actors a protocol actor spawned (its children), and leaves those the
// application spawned from the system's Root to the application (ActorSystem's doc).
func TestCloseStopsAProtocolActorsChildrenOnASharedSystem(t *testing.T) {
	system, nw := sharedSystemNetwork(t, 1)
	n := nw.Nodes[0]
	stopped := make(chan string, 2)
	helper := func(name string) *actor.Props {
		return actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*actor.Stopped); ok {
				stopped <- name
			}
		})
	}
	register(t, n, "parent/1", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			c.Spawn(helper("child"))
		}
	}))
	own := system.Root.Spawn(helper("root-spawned"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-stopped:
		if name != "child" {
			t.Fatalf("%s stopped by Close, want the protocol actor's child", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the protocol actor's child was not stopped by Close")
	}
	select {
	case name := <-stopped:
		t.Fatalf("%s stopped by Close as well, want it left to the application", name)
	default:
	}
	if err := system.Root.StopFuture(own).Wait(); err != nil {
		t.Fatal(err)
	}
	if name := <-stopped; name != "root-spawned" {
		t.Fatalf("%s stopped, want the application's own actor", name)
	}
}

// sharedSystemNetwork returns n nodes on one actor system, without discovery, and that system, shut down when the
// test ends (after the nodes close).
func sharedSystemNetwork(t *testing.T, n int) (*actor.ActorSystem, *testkit.Network) {
	t.Helper()
	system := actors.NewActorSystem(zerolog.Nop())
	t.Cleanup(system.Shutdown)
	return system, testkit.NewNetwork(t, n, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.ActorSystem = system
		cfg.DisableDiscovery = true
	}))
}
