package routing

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// A genuine record older than one verified before (its node's clock went back, or an old copy) is stale, not bad:
// BadRecords counts it nowhere, whether it comes as an asker's sender record (serve), an answer's sender record
// (learn) or among an answer's records (addRecord, which never counted it). Until stop 54 serve and learn
// counted it, addRecord did not (an audit's finding). A forged sender record still counts.
func TestStaleGenuineRecordsAreNotBadRecords(t *testing.T) {
	a, target, staleOf := staleRecordRig(t, 54)
	asker, answerer, relayed := identity(t, 11), identity(t, 12), identity(t, 13)

	a.serve(&askFrom{from: asker.NodeID(), remote: "203.0.113.11:40000",
		msg: &messages.FindNode{Target: target[:], Sender: staleOf(asker, "203.0.113.11:4001")}}, t0)
	if a.stats.BadRecords != 0 || a.stats.RequestsServed != 1 {
		t.Fatalf("an asker's stale sender record: BadRecords %d (RequestsServed %d), want 0", a.stats.BadRecords, a.stats.RequestsServed)
	}
	a.learn(answerer.NodeID(), &messages.Nodes{Sender: staleOf(answerer, "203.0.113.12:4001"),
		Records: []*messages.NodeRecord{staleOf(relayed, "203.0.113.13:4001")}}, t0, false)
	if a.stats.BadRecords != 0 {
		t.Fatalf("an answer's stale sender record and a stale relayed one: BadRecords %d, want 0", a.stats.BadRecords)
	}

	// A sender record that is another node's, genuine and fresh, is not the sender's own: bad.
	other, err := NewRecord(identity(t, 14), 1, []string{"203.0.113.14:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.serve(&askFrom{from: asker.NodeID(), remote: "203.0.113.11:40000", msg: &messages.FindNode{Target: target[:], Sender: other}}, t0.Add(time.Second))
	if a.stats.BadRecords != 1 {
		t.Fatalf("a forged sender record: BadRecords %d, want 1", a.stats.BadRecords)
	}
}

// Another node's record, genuine but stale, sent as the sender's own is not the sender's: it counts in BadRecords
// in serve and learn (only the sender's own stale record is not bad). The stale check came before the id's, and
// such a record counted nowhere (a review's finding).
func TestAnotherNodesStaleRecordAsTheSendersIsBad(t *testing.T) {
	a, target, staleOf := staleRecordRig(t, 541)
	asker, victim := identity(t, 21), identity(t, 22)
	a.serve(&askFrom{from: asker.NodeID(), remote: "203.0.113.21:40000",
		msg: &messages.FindNode{Target: target[:], Sender: staleOf(victim, "203.0.113.22:4001")}}, t0)
	if a.stats.BadRecords != 1 {
		t.Errorf("serve: an asker sending another node's stale record as its own: BadRecords %d, want 1", a.stats.BadRecords)
	}
	a.learn(asker.NodeID(), &messages.Nodes{Sender: staleOf(identity(t, 23), "203.0.113.23:4001")}, t0, false)
	if a.stats.BadRecords != 2 {
		t.Errorf("learn: an answer whose sender record is another node's stale one: BadRecords %d, want 2", a.stats.BadRecords)
	}
}

// staleRecordRig returns a routing actor with a verified-record cache, the key of its own id, and staleOf, which
// signs a record of id at addr with sequence 1 after the cache verified one with sequence 2: a stale record.
func staleRecordRig(t *testing.T, seed uint64) (*routingActor, Key, func(*session.Identity, string) *messages.NodeRecord) {
	t.Helper()
	rig := newRevalidationRig(t, seed)
	a := rig.actor(t, &stallingNet{id: rig.self})
	a.records = newVerifiedRecords(1024)
	staleOf := func(id *session.Identity, addr string) *messages.NodeRecord {
		t.Helper()
		old, err := NewRecord(id, 1, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		newer, err := NewRecord(id, 2, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.records.entry(newer); err != nil {
			t.Fatal(err)
		}
		return old
	}
	return a, KeyOf(rig.self), staleOf
}

// An answer whose sender record is another node's, genuine but stale, breaks the protocol as a fresh one does: the
// answerer is banned (Misbehaved), nothing of the answer is learned and BadRecords does not count it. The
// answerer's own stale record is no violation: the answer is learned and the answerer marked alive. Until stop 58
// another node's stale record passed checkReply (the stale check came before the id's).
func TestAnAnswerWithAnotherNodesStaleRecordAsTheSendersIsAViolation(t *testing.T) {
	a, _, staleOf := staleRecordRig(t, 581)
	answerer, victim, relayed := identity(t, 31), identity(t, 32), identity(t, 33)
	fresh, err := NewRecord(relayed, 1, []string{"203.0.113.33:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.inFlight = 1
	a.exchangeDone(&exchangeDone{from: a, peer: answerer.NodeID(), reply: &messages.Nodes{
		Sender: staleOf(victim, "203.0.113.32:4001"), Records: []*messages.NodeRecord{fresh}}}, t0)
	if a.stats.Misbehaved != 1 || a.stats.BadRecords != 0 {
		t.Fatalf("another node's stale record as the answerer's: Misbehaved %d BadRecords %d, want 1 and 0",
			a.stats.Misbehaved, a.stats.BadRecords)
	}
	if _, ok := a.table.RecordSeq(relayed.NodeID()); ok {
		t.Fatal("a record of the violating answer was learned")
	}

	a.inFlight = 1
	a.exchangeDone(&exchangeDone{from: a, peer: answerer.NodeID(), reply: &messages.Nodes{
		Sender: staleOf(answerer, "203.0.113.31:4001"), Records: []*messages.NodeRecord{fresh}}}, t0.Add(time.Second))
	if a.stats.Misbehaved != 1 || a.stats.BadRecords != 0 {
		t.Fatalf("the answerer's own stale record: Misbehaved %d BadRecords %d, want 1 and 0", a.stats.Misbehaved, a.stats.BadRecords)
	}
	if _, ok := a.table.RecordSeq(relayed.NodeID()); !ok {
		t.Fatal("the records of an answer with the answerer's own stale record were not learned")
	}
}
