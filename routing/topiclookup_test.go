package routing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// answeringNet answers every FindNode to a known peer with that peer's fixed Nodes, after the peer's delay.
type answeringNet struct {
	id      session.NodeID
	answers map[session.NodeID]*messages.Nodes
	delay   map[session.NodeID]time.Duration
}

func (n *answeringNet) ID() session.NodeID { return n.id }

func (n *answeringNet) Request(ctx context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	t := time.NewTimer(n.delay[peer])
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a, ok := n.answers[peer]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("unknown peer %s", peer.Short())
}

func (n *answeringNet) AddAddress(session.NodeID, string)                   {}
func (n *answeringNet) Ban(session.NodeID, time.Duration, string) error     { return nil }
func (n *answeringNet) SubscribeEvents(func(proto.Message)) (func(), error) { return func() {}, nil }

// A topic search reports first the registrations the most answers named. One hostile node that answers first
// with as many made-up registrations as a reply may carry used to fill the result, and the member that the two
// nodes near the key hold registered was dropped.
func TestTopicLookupPrefersRegistrationsSeveralAnswersName(t *testing.T) {
	record := func(id *session.Identity, addr string) *messages.NodeRecord {
		r, err := NewRecord(id, 1, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hostile, near1, near2, member := identity(t, 1), identity(t, 2), identity(t, 3), identity(t, 4)
	var fakes []*messages.NodeRecord
	for i := range MaxReplyRecords - 3 {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		fakes = append(fakes, record(id, fmt.Sprintf("198.51.100.%d:4001", 1+i)))
	}
	memberRec := record(member, "203.0.113.4:4001")
	net := &answeringNet{id: identity(t, 9).NodeID(),
		answers: map[session.NodeID]*messages.Nodes{
			hostile.NodeID(): {Sender: record(hostile, "203.0.113.1:4001"), Registered: append(fakes, fakes[0], fakes[0], fakes[0])},
			near1.NodeID():   {Sender: record(near1, "203.0.113.2:4001"), Registered: []*messages.NodeRecord{memberRec}},
			near2.NodeID():   {Sender: record(near2, "203.0.113.3:4001"), Registered: []*messages.NodeRecord{memberRec}},
		},
		delay: map[session.NodeID]time.Duration{near1.NodeID(): 50 * time.Millisecond, near2.NodeID(): 50 * time.Millisecond},
	}
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	var seeds []Entry
	for _, id := range []*session.Identity{hostile, near1, near2} {
		seeds = append(seeds, Entry{ID: id.NodeID(), Key: KeyOf(id.NodeID()), Addr: "203.0.113.9:4001"})
	}
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: TopicKey("t"), Topic: true, Reply: reply, Fallback: seeds})
	res := awaitLookup(t, reply, "the topic lookup")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	// The made-up records and the member, each once; a record an answer repeats counts once for it.
	if len(res.Registered) != len(fakes)+1 || res.Registered[0].ID != member.NodeID() {
		first := "none"
		if len(res.Registered) > 0 {
			first = res.Registered[0].ID.Short()
		}
		t.Fatalf("%d registered, the first %s: want %d with the member (%s), named by two answers, first",
			len(res.Registered), first, len(fakes)+1, member.NodeID().Short())
	}
}
