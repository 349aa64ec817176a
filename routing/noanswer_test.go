package routing

import (
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/session"
)

// Answered counts the nodes asked that answered, not those that failed nor those asked and still in flight.
func TestLookupAnsweredCountsTheAnswers(t *testing.T) {
	rng := newRand(54)
	self := randID(rng)
	seeds := []Entry{{ID: randID(rng), Addr: randAddr(rng)}, {ID: randID(rng), Addr: randAddr(rng)}, {ID: randID(rng), Addr: randAddr(rng)}}
	l := NewLookup(randKey(rng), self, seeds, 3, 3, 20)
	asked := l.Next()
	if len(asked) != 3 || l.Answered() != 0 {
		t.Fatalf("asked %d, Answered %d before any answer", len(asked), l.Answered())
	}
	l.Failed(asked[0].ID)
	l.Succeeded(asked[1].ID, nil)
	l.Succeeded(asked[1].ID, nil) // an answer from a node not in flight is ignored
	if l.Answered() != 1 || l.Queried() != 3 {
		t.Fatalf("Answered %d, Queried %d; want 1, 3", l.Answered(), l.Queried())
	}
}

// A lookup that asked nodes none of which answered fails with ErrNoAnswer, counted in LookupFailures, instead of
// succeeding with nobody found: FindClosest and FindTopicPeers passed that on as an empty neighbourhood, or a topic
// nobody registered on (an audit's finding, stop 54).
func TestALookupNoNodeAnsweredFailsWithErrNoAnswer(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := &bookNet{id: session.NodeID{1}, addrs: map[session.NodeID]string{}} // every request fails at once
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	seeds := []Entry{{ID: session.NodeID{2}, Addr: "198.51.100.2:4001"}, {ID: session.NodeID{3}, Addr: "198.51.100.3:4001"}}
	for _, topic := range []bool{false, true} {
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: TopicKey("t"), Seeds: seeds, Topic: topic, Reply: reply})
		r := awaitLookup(t, reply, "the lookup nobody answered")
		if !errors.Is(r.Err, ErrNoAnswer) || r.Queried != len(seeds) || len(r.Closest) != 0 {
			t.Fatalf("topic %v: Err %v, Queried %d, Closest %d; want ErrNoAnswer after asking both seeds", topic, r.Err, r.Queried, len(r.Closest))
		}
	}
	if st := statsOf(t, sys, pid); st.Lookups != 2 || st.LookupFailures != 2 {
		t.Fatalf("Lookups %d, LookupFailures %d; want 2, 2", st.Lookups, st.LookupFailures)
	}
}
