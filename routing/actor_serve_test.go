package routing

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// askFrom is a FindNode as the node delivers it: from a peer, over a connection from remote.
type askFrom struct {
	from   session.NodeID
	msg    proto.Message
	remote string
}

func (r *askFrom) Sender() session.NodeID    { return r.from }
func (r *askFrom) Message() proto.Message    { return r.msg }
func (r *askFrom) Reply(proto.Message) error { return nil }
func (r *askFrom) ReplyError(error) error    { return nil }
func (r *askFrom) RemoteAddr() string        { return r.remote }

// An asker is taken into the table, as having answered, only when its record names the host its connection comes
// from. One host asking with 40 identities, each record naming another /24, used to get 40 entries marked alive,
// past TableIPLimit (10).
func TestAnAskerIsTakenIntoTheTableFromItsOwnHostOnly(t *testing.T) {
	rig := newRevalidationRig(t, 7)
	a, tab := rig.actor(t, &stallingNet{id: rig.self}), rig.tab
	a.records = newVerifiedRecords(1024)
	target := KeyOf(rig.self)
	ask := func(i int, claimed, remote string) session.NodeID {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		rec, err := NewRecord(id, 1, []string{claimed})
		if err != nil {
			t.Fatal(err)
		}
		a.serve(&askFrom{from: id.NodeID(), remote: remote, msg: &messages.FindNode{Target: target[:], Sender: rec}}, t0.Add(time.Duration(i)*time.Second))
		return id.NodeID()
	}
	for i := range 40 {
		ask(i, fmt.Sprintf("198.%d.%d.1:4001", 18+i/200, i%200), "203.0.113.5:40000")
	}
	if n := tab.Len(); n != 0 {
		t.Fatalf("one host asking with records naming other hosts holds %d entries", n)
	}
	honest := ask(40, "203.0.113.9:4001", "203.0.113.9:51234")
	if e, ok := tab.Get(honest); !ok || !e.Answered() {
		t.Fatal("an asker whose record names its own host was not taken as alive")
	}
}
