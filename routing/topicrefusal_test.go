package routing

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// A registration the registrar refuses counts in TopicRegistrationsRefused and is logged at debug with its reason;
// the registrant is answered as usual. Six registrants over connections of one /24 register on a topic: an
// eighth of its 32 registrations (4) are that group's, and the two others were refused with no trace before
// stop 54 (an audit's finding). A registration without a record of the registrant's own is refused too.
func TestRefusedTopicRegistrationsAreCountedAndLogged(t *testing.T) {
	rig := newRevalidationRig(t, 71)
	a := rig.actor(t, &stallingNet{id: rig.self})
	var logs bytes.Buffer // the actor is driven on this goroutine: its logs are written here
	a.log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	a.records = newVerifiedRecords(1024)
	a.topics = newTopicRegistry(a.cfg.TopicTTL, a.cfg.MaxTopics, a.cfg.TopicRegistrations, max(1, a.cfg.TopicRegistrations/8), rig.tab.groupOf)
	topic := TopicKey("fleet")
	const members = 6
	for i := range members {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("198.51.100.%d:4001", 10+i)
		rec, err := NewRecord(id, 1, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		a.serve(&askFrom{from: id.NodeID(), remote: fmt.Sprintf("198.51.100.%d:5%04d", 10+i, i),
			msg: &messages.FindNode{Target: topic[:], Sender: rec, Topic: true, Register: true}}, t0.Add(time.Duration(i)*time.Second))
	}
	held := len(a.topics.Registered(topic, t0.Add(time.Minute), 64, session.NodeID{}))
	if st := a.stats; held != 4 || st.TopicRegistrations != 4 || st.TopicRegistrationsRefused != members-4 {
		t.Fatalf("held %d; TopicRegistrations %d, TopicRegistrationsRefused %d; want 4, 4, %d", held, st.TopicRegistrations, st.TopicRegistrationsRefused, members-4)
	}
	if n := strings.Count(logs.String(), "most registrations allowed on the topic"); n != members-4 {
		t.Fatalf("%d refusals logged with their reason, want %d:\n%s", n, members-4, logs.String())
	}

	anonymous := identity(t, 9)
	a.serve(&askFrom{from: anonymous.NodeID(), remote: "203.0.113.9:50000",
		msg: &messages.FindNode{Target: topic[:], Topic: true, Register: true}}, t0.Add(time.Minute))
	if st := a.stats; st.TopicRegistrationsRefused != members-3 || !strings.Contains(logs.String(), "no valid record of the registrant's own") {
		t.Fatalf("a registration without a record: TopicRegistrationsRefused %d, want %d; logs:\n%s", st.TopicRegistrationsRefused, members-3, logs.String())
	}
}

// register names the reason it refused a registration for.
func TestTopicRegistryRefusalNamesTheReason(t *testing.T) {
	tab, err := NewTable(session.NodeID{1}, DefaultTableConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := newTopicRegistry(time.Hour, 8, 8, 1, tab.groupOf) // one registration per group and topic, 2 over all topics
	rec := func(n byte, addr string) Entry {
		t.Helper()
		rec, err := NewRecord(identity(t, n), 1, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		e, err := EntryFromRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	big := rec(1, "198.51.100.1:4001")
	big.Record.Addrs = append(big.Record.Addrs, strings.Repeat("x", MaxRegisteredRecordSize))
	cases := []struct {
		topic string
		e     Entry
		from  string
		want  string
	}{
		{"a", rec(2, "198.51.100.2:4001"), "not an address", "no IP group"},
		{"a", big, "198.51.100.1:4001", "over MaxRegisteredRecordSize"},
		{"a", rec(3, "198.51.100.3:4001"), "", ""},
		{"a", rec(4, "198.51.100.4:4001"), "", "on the topic"},
		{"b", rec(5, "198.51.100.5:4001"), "", ""},
		{"c", rec(6, "198.51.100.6:4001"), "", "over all topics"},
	}
	for i, c := range cases {
		got := r.register(TopicKey(c.topic), c.e, c.from, t0)
		if (got == "") != (c.want == "") || !strings.Contains(got, c.want) {
			t.Fatalf("case %d: register refused %q, want %q", i, got, c.want)
		}
	}
}
