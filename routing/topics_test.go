package routing

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// topicEntry returns an entry of a random node at addr with a (placeholder) record the registry hands out.
func topicEntry(t *testing.T, seed uint64, addr string) Entry {
	t.Helper()
	id := randID(newRand(seed))
	return Entry{ID: id, Key: KeyOf(id), Addr: addr, Record: &messages.NodeRecord{Id: id[:], Addrs: []string{addr}}}
}

func newTestRegistry(t *testing.T, ttl time.Duration, maxTopics, perTopic, perGroup int) *topicRegistry {
	t.Helper()
	tab, err := NewTable(randID(newRand(99)), DefaultTableConfig())
	if err != nil {
		t.Fatal(err)
	}
	return newTopicRegistry(ttl, maxTopics, perTopic, perGroup, tab.groupOf)
}

func recordIDs(recs []*messages.NodeRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		id, _ := session.NodeIDFromBytes(r.GetId())
		out[i] = id.Short()
	}
	return out
}

func TestTopicKeyIsPerTopicAndApartFromNodeKeys(t *testing.T) {
	if a, b := TopicKey("blocks"), TopicKey(string([]byte("blocks"))); a != b {
		t.Fatal("TopicKey is not a function of the name")
	}
	if TopicKey("blocks") == TopicKey("blocks2") {
		t.Fatal("two topics share a key")
	}
	var id session.NodeID
	copy(id[:], "blocks")
	if TopicKey("blocks") == KeyOf(id) {
		t.Fatal("a topic's key is a node's key")
	}
}

func TestTopicRegistryHandsOutRegistrationsNewestFirstWithoutTheAsker(t *testing.T) {
	r := newTestRegistry(t, time.Minute, 8, 4, 4)
	topic := TopicKey("x")
	a, b, c := topicEntry(t, 1, "1.0.0.1:1"), topicEntry(t, 2, "2.0.0.1:1"), topicEntry(t, 3, "3.0.0.1:1")
	for i, e := range []Entry{a, b, c} {
		if !r.Register(topic, e, "", t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("registration %d refused", i)
		}
	}
	got := recordIDs(r.Registered(topic, t0.Add(3*time.Second), 10, b.ID))
	want := []string{c.ID.Short(), a.ID.Short()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("registered for b = %v, want %v", got, want)
	}
	if got := r.Registered(topic, t0, 1, session.NodeID{}); len(got) != 1 {
		t.Fatalf("max 1 gave %d records", len(got))
	}
	if got := r.Registered(TopicKey("other"), t0, 10, session.NodeID{}); len(got) != 0 {
		t.Fatalf("another topic has %d registrations", len(got))
	}
	// A renewal moves a to the newest place, without a second entry.
	r.Register(topic, a, "", t0.Add(4*time.Second))
	got = recordIDs(r.Registered(topic, t0.Add(4*time.Second), 10, session.NodeID{}))
	want = []string{a.ID.Short(), c.ID.Short(), b.ID.Short()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a's renewal: %v, want %v", got, want)
	}
}

func TestTopicRegistrationsExpire(t *testing.T) {
	r := newTestRegistry(t, time.Minute, 8, 4, 4)
	topic := TopicKey("x")
	a, b := topicEntry(t, 1, "1.0.0.1:1"), topicEntry(t, 2, "2.0.0.1:1")
	r.Register(topic, a, "", t0)
	r.Register(topic, b, "", t0.Add(30*time.Second))
	if got := r.Registered(topic, t0.Add(time.Minute), 10, session.NodeID{}); len(got) != 1 || recordIDs(got)[0] != b.ID.Short() {
		t.Fatalf("a minute on: %v, want b only", recordIDs(got))
	}
	r.Expire(t0.Add(2 * time.Minute))
	if topics, regs := r.Len(); topics != 0 || regs != 0 {
		t.Fatalf("after both expired: %d topics, %d registrations held", topics, regs)
	}
}

func TestTopicRegistryIsBounded(t *testing.T) {
	r := newTestRegistry(t, time.Hour, 2, 3, 3)
	x, y, z := TopicKey("x"), TopicKey("y"), TopicKey("z")
	for i := range 5 { // a full topic evicts its oldest registration
		r.Register(x, topicEntry(t, uint64(10+i), fmt.Sprintf("%d.0.0.1:1", 10+i)), "", t0.Add(time.Duration(i)*time.Second))
	}
	got := recordIDs(r.Registered(x, t0.Add(time.Minute), 10, session.NodeID{}))
	want := []string{topicEntry(t, 14, "").ID.Short(), topicEntry(t, 13, "").ID.Short(), topicEntry(t, 12, "").ID.Short()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a full topic kept %v, want the newest three %v", got, want)
	}
	// A third topic evicts the one registered on least recently (y, registered on before x's last).
	r.Register(y, topicEntry(t, 20, "20.0.0.1:1"), "", t0.Add(2*time.Second))
	r.Register(z, topicEntry(t, 21, "21.0.0.1:1"), "", t0.Add(10*time.Second))
	if len(r.Registered(y, t0.Add(time.Minute), 10, session.NodeID{})) != 0 {
		t.Fatal("the topic registered on least recently was kept")
	}
	if len(r.Registered(x, t0.Add(time.Minute), 10, session.NodeID{})) != 3 || len(r.Registered(z, t0.Add(time.Minute), 10, session.NodeID{})) != 1 {
		t.Fatal("a topic registered on recently was evicted")
	}
	if topics, regs := r.Len(); topics != 2 || regs != 4 {
		t.Fatalf("%d topics, %d registrations held, want 2 and 4", topics, regs)
	}
}

func TestTopicRegistryLimitsOneIPGroup(t *testing.T) {
	r := newTestRegistry(t, time.Hour, 8, 8, 2)
	topic := TopicKey("x")
	var in []Entry
	for i := range 4 { // one /24
		e := topicEntry(t, uint64(30+i), fmt.Sprintf("9.9.9.%d:1", 1+i))
		if ok := r.Register(topic, e, "", t0); ok != (i < 2) {
			t.Fatalf("registration %d of one /24: accepted %v", i, ok)
		}
		in = append(in, e)
	}
	if !r.Register(topic, in[0], "", t0.Add(time.Second)) {
		t.Fatal("a renewal was refused for its group's limit")
	}
	if !r.Register(topic, topicEntry(t, 40, "8.8.8.8:1"), "", t0) {
		t.Fatal("another group was refused")
	}
	if r.Register(topic, Entry{ID: randID(newRand(41)), Addr: "not an address", Record: &messages.NodeRecord{}}, "", t0) {
		t.Fatal("an address with no IP group was accepted")
	}
}

// With ExemptPrivate (a node on a private network), a fleet sharing a private /24 registers on a topic past the
// per-group limit, which refused all but 2 of them here; a public /24 keeps the limit.
func TestTopicRegistryExemptsPrivateGroupsWithExemptPrivate(t *testing.T) {
	cfg := DefaultTableConfig()
	cfg.ExemptPrivate = true
	tab, err := NewTable(randID(newRand(99)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newTopicRegistry(time.Hour, 8, 8, 2, tab.groupOf)
	topic := TopicKey("x")
	for i := range 6 {
		if !r.Register(topic, topicEntry(t, uint64(70+i), fmt.Sprintf("10.0.0.%d:1", 1+i)), "", t0) {
			t.Fatalf("registration %d of a private /24 refused", i)
		}
	}
	for i := range 3 {
		if ok := r.Register(topic, topicEntry(t, uint64(80+i), fmt.Sprintf("9.9.9.%d:1", 1+i)), "", t0); ok != (i < 2) {
			t.Fatalf("registration %d of a public /24: accepted %v", i, ok)
		}
	}
}

// The IP group is the connection's, not the one of the address a registrant claims; a renewal from another group
// is checked as a new registration; one group holds at most maxTopics/4 registrations over all topics; a record
// over MaxRegisteredRecordSize is refused.
func TestTopicRegistryGroupsByTheConnectionAndBoundsEachGroup(t *testing.T) {
	r := newTestRegistry(t, time.Hour, 16, 8, 2) // 4 registrations per group over all topics
	topic := TopicKey("x")
	for i := range 3 { // three registrants claiming three /24s, all connecting from one
		e := topicEntry(t, uint64(50+i), fmt.Sprintf("%d.1.1.1:1", 10+i))
		if ok := r.Register(topic, e, fmt.Sprintf("9.9.9.%d:5000", 1+i), t0); ok != (i < 2) {
			t.Fatalf("registration %d from one /24 claiming another: accepted %v", i, ok)
		}
	}
	// A registrant renewing over a connection from another, full, group is refused, and keeps its registration.
	moved := topicEntry(t, 60, "7.7.7.7:1")
	if !r.Register(topic, moved, "7.7.7.7:5000", t0) {
		t.Fatal("a registration from a new group was refused")
	}
	if r.Register(topic, moved, "9.9.9.9:5000", t0.Add(time.Second)) {
		t.Fatal("a renewal into a full group was accepted")
	}
	if got := len(r.Registered(topic, t0.Add(2*time.Second), 10, session.NodeID{})); got != 3 {
		t.Fatalf("%d registrations held, want 3 (two of 9.9.9.0/24, the renewal refused, the first kept)", got)
	}
	// Over all topics: the 9.9.9.0/24 group has 2; two more topics fill its 4, the fifth is refused.
	for i, want := range []bool{true, true, false} {
		e := topicEntry(t, uint64(70+i), "6.6.6.6:1")
		if ok := r.Register(TopicKey(fmt.Sprint("t", i)), e, "9.9.9.200:1", t0); ok != want {
			t.Fatalf("registration %d of the group on another topic: accepted %v, want %v", i, ok, want)
		}
	}
	big := topicEntry(t, 80, "5.5.5.5:1")
	for len(big.Record.Addrs) < 8 {
		big.Record.Addrs = append(big.Record.Addrs, fmt.Sprintf("%0100d:1", len(big.Record.Addrs)))
	}
	if r.Register(topic, big, "5.5.5.5:1", t0) {
		t.Fatalf("a record of %d bytes was registered", proto.Size(big.Record))
	}
}

// A new topic evicts, among the topics registered from the fewest IP groups, the one registered on least recently:
// four groups, each registering its bound over all topics (maxTopics/4) on made-up topic keys, evicted every topic
// the registrar held (an audit's finding); and eight groups registering 64 made-up topics from two groups each must
// not lock the registry against new topics (a review's finding against refusing them).
func TestTopicsOfSeveralGroupsAreNotEvictedByNewOnes(t *testing.T) {
	r := newTestRegistry(t, time.Hour, 64, 32, 4) // the defaults: MaxTopics 64, TopicRegistrations 32, 4 per group
	honest := TopicKey("honest")
	for i := range 3 {
		if !r.Register(honest, topicEntry(t, uint64(100+i), fmt.Sprintf("%d.1.1.1:1", 20+i)), "", t0) {
			t.Fatal("setup: honest registration refused")
		}
	}
	accepted := 0
	for g := range 4 {
		for i := range 16 {
			e := topicEntry(t, uint64(1000+16*g+i), fmt.Sprintf("100.%d.0.%d:1", g, 1+i))
			if r.Register(TopicKey(fmt.Sprintf("junk-%d-%d", g, i)), e, "", t0.Add(time.Second)) {
				accepted++
			}
		}
	}
	if got := r.Registered(honest, t0.Add(2*time.Second), 32, session.NodeID{}); len(got) != 3 {
		t.Fatalf("%d junk registrations from 4 /24s accepted; the honest topic's registrations from 3 groups: %d left, want 3", accepted, len(got))
	}
	if accepted != 64 {
		t.Fatalf("%d junk registrations accepted, want 64 (63 topics of one group fit, then each evicts the oldest)", accepted)
	}

	locked := newTestRegistry(t, time.Hour, 64, 32, 4)
	n := 0
	for k := range 64 {
		for _, g := range []int{(2 * k) % 8, (2*k + 1) % 8} {
			n++
			if !locked.Register(TopicKey(fmt.Sprint("junk-", k)), topicEntry(t, uint64(1000+n), fmt.Sprintf("100.0.%d.%d:1", g, 1+n%200)), "", t0) {
				t.Fatalf("setup: junk registration %d refused", n)
			}
		}
	}
	if !locked.Register(TopicKey("honest"), topicEntry(t, 7, "20.1.1.1:1"), "", t0.Add(time.Second)) {
		t.Fatal("a new topic was refused by a registry full of topics of two groups")
	}
}
