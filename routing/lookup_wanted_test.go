package routing

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// answerWithRecord answers every request with rec as the sender's record.
type answerWithRecord struct {
	stallingNet
	rec *messages.NodeRecord
}

func (n *answerWithRecord) Request(context.Context, session.NodeID, string, proto.Message) (proto.Message, error) {
	return &messages.Nodes{Sender: n.rec}, nil
}

// A wanted node met only as a starting point without an address (a connected peer that declared none) that
// answers with its signed record is returned with that record and its address: it used to be returned as the
// starting point, without either, and Node.Lookup succeeded with an empty address.
func TestALookupReturnsTheWantedNodesOwnRecord(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	peer, _ := session.GenerateIdentity()
	rec, err := NewRecord(peer, 1, []string{"198.51.100.7:4001"})
	if err != nil {
		t.Fatal(err)
	}
	net := &answerWithRecord{stallingNet: stallingNet{id: session.NodeID{1}}, rec: rec}
	props, err := NewActorProps(DefaultConfig(), net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	want := peer.NodeID()
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(want), Want: &want, Fallback: []Entry{{ID: want, Key: KeyOf(want)}}, Reply: reply})
	select {
	case r := <-reply:
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Wanted == nil || r.Wanted.Record == nil || r.Wanted.Addr != "198.51.100.7:4001" {
			t.Fatalf("Wanted %+v, want the node's own record and address", r.Wanted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result")
	}
}
