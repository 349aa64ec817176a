package routing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// TestHostileAnswersOnTheLookupPathDoNotHideTheRegisteredMembers: of seven nodes, the three closest to a topic's key
// are registrars naming the honest member; the other four are one attacker's, on the lookup's path (the asker's
// only seed names the other three, which name the registrars), each answering with MaxReplyRecords made-up
// registrations, distinct or the same in all four. The member is in the result: a registration named by the
// answerers closest to the key ranks first (registeredTally). The lookup kept the first 256 registrations in the
// order they came and counted every answer alike, and the member was in neither result (an audit's finding).
func TestHostileAnswersOnTheLookupPathDoNotHideTheRegisteredMembers(t *testing.T) {
	for _, same := range []bool{false, true} {
		record := func(id *session.Identity, addr string) *messages.NodeRecord {
			r, err := NewRecord(id, 1, []string{addr})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		made := func(h int) []*messages.NodeRecord {
			var fakes []*messages.NodeRecord
			for i := range MaxReplyRecords {
				id, err := session.GenerateIdentity()
				if err != nil {
					t.Fatal(err)
				}
				fakes = append(fakes, record(id, fmt.Sprintf("198.51.%d.%d:4001", 100+h, 1+i)))
			}
			return fakes
		}
		member := identity(t, 40)
		memberRec := record(member, "203.0.113.4:4001")
		key := TopicKey("t")
		var ids []*session.Identity
		for i := range 7 {
			ids = append(ids, identity(t, byte(50+i)))
		}
		slices.SortFunc(ids, func(a, b *session.Identity) int { return DistCmp(key, KeyOf(a.NodeID()), KeyOf(b.NodeID())) })
		near, hostile := ids[:3], ids[3:]
		addrOf := map[*session.Identity]string{}
		for i, id := range ids {
			addrOf[id] = fmt.Sprintf("192.0.%d.1:4001", 2+i)
		}
		answers := map[session.NodeID]*messages.Nodes{}
		delay := map[session.NodeID]time.Duration{}
		var nearRecs, hostileRecs []*messages.NodeRecord
		for _, id := range near {
			nearRecs = append(nearRecs, record(id, addrOf[id]))
			answers[id.NodeID()] = &messages.Nodes{Sender: record(id, addrOf[id]), Registered: []*messages.NodeRecord{memberRec}}
			delay[id.NodeID()] = 20 * time.Millisecond // asked last, as the nodes nearest the key are, and answering later
		}
		for _, id := range hostile[1:] {
			hostileRecs = append(hostileRecs, record(id, addrOf[id]))
		}
		fakes := made(0)
		for h, hid := range hostile {
			if !same {
				fakes = made(h)
			}
			closer := nearRecs
			if h == 0 {
				closer = hostileRecs
			}
			answers[hid.NodeID()] = &messages.Nodes{Sender: record(hid, addrOf[hid]), Records: closer, Registered: fakes}
		}
		seeds := []Entry{{ID: hostile[0].NodeID(), Key: KeyOf(hostile[0].NodeID()), Addr: addrOf[hostile[0]]}}
		net := &answeringNet{id: identity(t, 9).NodeID(), answers: answers, delay: delay}
		sys := actor.NewActorSystem()
		props, err := NewActorProps(DefaultConfig(), net)
		if err != nil {
			t.Fatal(err)
		}
		pid := sys.Root.Spawn(props)
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Ctx: context.Background(), Target: key, Topic: true, Reply: reply, Fallback: seeds})
		res := awaitLookup(t, reply, "the topic lookup")
		_ = sys.Root.StopFuture(pid).Wait()
		sys.Shutdown()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if !slices.ContainsFunc(res.Registered, func(e Entry) bool { return e.ID == member.NodeID() }) {
			t.Errorf("same fakes in every hostile answer %v: %d registered (queried %d), the honest member named by the 3 nodes nearest the key is not among them",
				same, len(res.Registered), res.Queried)
		}
	}
}

// registeredTally scores a registration by the answerers that named it, each adding 1/(r+1) for its rank r by
// closeness to the key, whatever the order the answers came in, and keeps each node's newest record and the 16
// closest answerers. One answerer, the closest (an id ground near the key), cannot outrank what the next fifteen
// name (a review's finding against ranking by the closest answerer alone).
func TestRegisteredTallyScoresByTheClosestAnswerers(t *testing.T) {
	target := KeyOf(session.NodeID{0xAA})
	var answerers []Key
	for i := range 20 {
		answerers = append(answerers, KeyOf(session.NodeID{byte(i)}))
	}
	slices.SortFunc(answerers, func(a, b Key) int { return DistCmp(target, a, b) })
	entry := func(b byte, seq uint64) Entry {
		return Entry{ID: session.NodeID{b}, Record: &messages.NodeRecord{Seq: seq}}
	}
	ids := func(es []Entry) (out []byte) {
		for _, e := range es {
			out = append(out, e.ID[0])
		}
		return out
	}

	// Farthest first, as early hops answer. m: ranks 0-2 (1.83); x: ranks 3-15, the farther 4 not kept (1.55);
	// y: ranks 1-2 (0.83).
	tally := newRegisteredTally(target)
	for i := len(answerers) - 1; i >= 3; i-- {
		tally.add(answerers[i], []Entry{entry('x', 1)})
	}
	tally.add(answerers[2], []Entry{entry('m', 1), entry('y', 1)})
	tally.add(answerers[1], []Entry{entry('y', 1), entry('m', 2)})
	tally.add(answerers[0], []Entry{entry('m', 1)})
	best := tally.best(3, rand.Shuffle)
	if got := ids(best); !slices.Equal(got, []byte{'m', 'x', 'y'}) {
		t.Fatalf("ranking %q, want m, x, y", got)
	}
	if best[0].Record.GetSeq() != 2 {
		t.Fatalf("m's record: seq %d, want the newest (2)", best[0].Record.GetSeq())
	}
	if len(tally.answers) != maxTallyAnswers {
		t.Fatalf("%d answers kept, want the %d closest", len(tally.answers), maxTallyAnswers)
	}

	// The closest answerer names 64 made-up nodes, the next fifteen the member.
	tally = newRegisteredTally(target)
	var fakes []Entry
	for i := range MaxReplyRecords {
		fakes = append(fakes, Entry{ID: session.NodeID{0xBB, byte(i)}})
	}
	tally.add(answerers[0], fakes)
	for _, k := range answerers[1:16] {
		tally.add(k, []Entry{entry('m', 1)})
	}
	if best := tally.best(MaxReplyRecords, rand.Shuffle); best[0].ID != (session.NodeID{'m'}) {
		t.Fatalf("the member the fifteen next closest answerers named is not first: %v", best[0].ID)
	}
}

// Equal scores are equal: a node named by the closest answerer alone (1) and one named by the answerers of ranks 1,
// 2 and 5 (1/2 + 1/3 + 1/6) come in either order. Summed in float64 the second read 0.9999999999999999 and always
// came second (a review's finding).
func TestEqualRegisteredScoresComeInEitherOrder(t *testing.T) {
	target := KeyOf(session.NodeID{0xAA})
	var answerers []Key
	for i := range 16 {
		answerers = append(answerers, KeyOf(session.NodeID{byte(i)}))
	}
	slices.SortFunc(answerers, func(a, b Key) int { return DistCmp(target, a, b) })
	x, y := Entry{ID: session.NodeID{'x'}}, Entry{ID: session.NodeID{'y'}}
	firsts := map[session.NodeID]int{}
	for range 200 {
		tally := newRegisteredTally(target)
		tally.add(answerers[0], []Entry{x})
		for _, r := range []int{1, 2, 5} {
			tally.add(answerers[r], []Entry{y})
		}
		tally.add(answerers[3], nil) // answered, naming nobody
		tally.add(answerers[4], nil)
		firsts[tally.best(2, rand.Shuffle)[0].ID]++
	}
	if firsts[x.ID] == 0 || firsts[y.ID] == 0 {
		t.Fatalf("first %d times x, %d times y; want both", firsts[x.ID], firsts[y.ID])
	}
}
