package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// nodesResponder answers every discovery request with the given reply, whatever was asked: a hostile peer.
func nodesResponder(reply *messages.Nodes) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok && in.IsRequest() {
			_ = in.Reply(reply)
		}
	})
}

func freshRecord(t *testing.T, addr string) (*session.Identity, *messages.NodeRecord) {
	t.Helper()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.NewRecord(id, 1, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	return id, r
}

func tableHas(t *testing.T, n *actors.Node, id session.NodeID) (routing.Entry, bool) {
	t.Helper()
	s, err := n.RoutingTable(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Entries {
		if e.ID == id {
			return e, true
		}
	}
	return routing.Entry{}, false
}

func stats(t *testing.T, n *actors.Node) routing.Stats {
	t.Helper()
	s, err := n.RoutingTable(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return s.Stats
}

func TestOversizedNodesReplyGetsThePeerBanned(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = i == 2 // the hostile node serves the discovery protocol itself
	}))
	victim, honest, hostile := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	var fakes []*messages.NodeRecord
	for i := 0; i < routing.MaxReplyRecords+1; i++ {
		_, r := freshRecord(t, fmt.Sprintf("127.0.0.1:%d", 1000+i))
		fakes = append(fakes, r)
	}
	register(t, hostile, routing.Protocol, nodesResponder(&messages.Nodes{Records: fakes}))
	nw.Connect(1, 0)

	// The victim asks every new peer for its neighbourhood: the hostile one answers with more records than the
	// protocol allows.
	if err := victim.Connect(ctxTimeout(t, 5*time.Second), hostile.Addr(), false); err != nil {
		t.Fatal(err)
	}
	waitBanned(t, victim, hostile.ID(), "too many records", "the hostile peer banned for its oversized reply")
	testkit.WaitFor(t, 10*time.Second, func() bool { return !victim.Connected(hostile.ID()) }, "the hostile peer disconnected")
	if s := stats(t, victim); s.Misbehaved == 0 {
		t.Fatalf("stats %+v: misbehaviour not counted", s)
	}
	for _, r := range fakes {
		id, _ := session.NodeIDFromBytes(r.GetId())
		if _, ok := tableHas(t, victim, id); ok {
			t.Fatalf("a record of the oversized reply reached the table: %s", id.Short())
		}
	}
	// The hostile peer cannot come back (the victim learns who dials only at the end of the handshake, so the
	// dial may complete before the BANNED disconnect); the victim keeps serving the others.
	_ = hostile.Connect(ctxTimeout(t, 5*time.Second), victim.Addr(), false)
	testkit.WaitFor(t, 10*time.Second, func() bool { return !hostile.Connected(victim.ID()) }, "the banned peer's new connection closed")
	if victim.Connected(hostile.ID()) {
		t.Fatal("the victim accepted a banned peer")
	}
	addr, err := honest.Lookup(ctxTimeout(t, 10*time.Second), victim.ID())
	if err != nil || addr != victim.Addr() {
		t.Fatalf("honest lookup of the victim: %v %v", addr, err)
	}
}

func TestForgedAndStaleRecordsAreRejected(t *testing.T) {
	honestID, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = i == 2
		if i == 1 {
			cfg.Identity = honestID
		}
	}))
	victim, honest, hostile := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	nw.Connect(0, 1)
	testkit.WaitFor(t, 10*time.Second, func() bool { _, ok := tableHas(t, victim, honest.ID()); return ok },
		"the victim's table holds the honest node")

	// Forged: the honest node's id with another address, signed by someone else. Stale: signed by the honest node
	// itself, but with a sequence number below the one the victim holds.
	_, forged := freshRecord(t, "127.0.0.1:9")
	forged.Id = honest.ID().Bytes()
	stale, err := routing.NewRecord(honestID, 1, []string{"127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	register(t, hostile, routing.Protocol, nodesResponder(&messages.Nodes{Records: []*messages.NodeRecord{stale, forged}}))
	before := stats(t, victim).BadRecords
	if err := victim.Connect(ctxTimeout(t, 5*time.Second), hostile.Addr(), false); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return stats(t, victim).BadRecords > before },
		"the forged record counted as bad")
	victim.AddRecords([]*messages.NodeRecord{stale, forged})
	e, ok := tableHas(t, victim, honest.ID())
	if !ok || e.Addr != honest.Addr().Addr {
		t.Fatalf("the honest node's entry is %+v (present %v), want address %s", e, ok, honest.Addr().Addr)
	}
	// Relaying bad records is not held against a peer (it may have been fooled); only its own record counts.
	for _, b := range victim.Bans() {
		if b.ID == hostile.ID() {
			t.Fatalf("peer banned for relaying bad records: %+v", b)
		}
	}
	// Nobody can forge another node's address: a direct request to the honest node still reaches it.
	if _, err := victim.Ping(ctxTimeout(t, 5*time.Second), honest.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestFindNodeFloodIsThrottled(t *testing.T) {
	nw := testkit.NewNetwork(t, 3)
	victim, flooder, honest := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	nw.Connect(1, 0)
	nw.Connect(2, 0)
	target := routing.KeyOf(victim.ID())
	overloaded := 0
	for i := 0; i < 200; i++ {
		_, err := flooder.Request(ctxTimeout(t, 5*time.Second), victim.ID(), routing.Protocol, &messages.FindNode{Target: target[:]})
		var re *actors.RemoteError
		switch {
		case err == nil:
		case errors.As(err, &re) && strings.Contains(re.Message, "overloaded"):
			overloaded++
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if overloaded == 0 {
		t.Fatal("200 FindNode requests in a burst were all served")
	}
	if s := stats(t, victim); s.Throttled == 0 {
		t.Fatalf("stats %+v: throttling not counted", s)
	}
	// Throttling is per peer: the honest node is served meanwhile.
	addr, err := honest.Lookup(ctxTimeout(t, 10*time.Second), flooder.ID())
	if err != nil || addr != flooder.Addr() {
		t.Fatalf("honest lookup through the flooded node: %v %v", addr, err)
	}
	t.Logf("%d of 200 requests refused as overloaded", overloaded)
}

// A node registers on a topic only the record of the peer that asks, over its authenticated connection: a peer
// cannot register another node (to draw searchers to it), and the answers leave out the asker's own registration.
func TestTopicRegistrationsAreTheSendersOwn(t *testing.T) {
	ids := make([]*session.Identity, 3)
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity, ids[i] = id, id
	}))
	registrar, asker, other := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	nw.Connect(1, 0)
	nw.Connect(2, 0)
	record := func(i int) *messages.NodeRecord { // newer than the record the node sent with its own requests
		r, err := routing.NewRecord(ids[i], uint64(time.Now().UnixNano()), []string{nw.Nodes[i].Addr().Addr})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	key := routing.TopicKey("t")
	ask := func(from *actors.Node, fn *messages.FindNode) *messages.Nodes {
		t.Helper()
		reply, err := from.Request(ctxTimeout(t, 5*time.Second), registrar.ID(), routing.Protocol, fn)
		if err != nil {
			t.Fatal(err)
		}
		return reply.(*messages.Nodes)
	}
	registered := func(n *messages.Nodes) []string {
		var out []string
		for _, r := range n.GetRegistered() {
			id, _ := session.NodeIDFromBytes(r.GetId())
			out = append(out, id.Short())
		}
		return out
	}
	// The asker sends the other node's record to register: refused. A registration without the topic flag, or
	// without a record, registers nobody either.
	ask(asker, &messages.FindNode{Target: key[:], Topic: true, Register: true, Sender: record(2)})
	ask(asker, &messages.FindNode{Target: key[:], Register: true, Sender: record(1)})
	ask(asker, &messages.FindNode{Target: key[:], Topic: true, Register: true})
	if got := registered(ask(other, &messages.FindNode{Target: key[:], Topic: true})); len(got) != 0 {
		t.Fatalf("registered after the refused registrations: %v", got)
	}
	// Its own record registers it; the others then find it, and it does not find itself.
	ask(asker, &messages.FindNode{Target: key[:], Topic: true, Register: true, Sender: record(1)})
	if got := registered(ask(other, &messages.FindNode{Target: key[:], Topic: true})); len(got) != 1 || got[0] != asker.ID().Short() {
		t.Fatalf("registered: %v, want the asker (%s)", got, asker.ID().Short())
	}
	if got := registered(ask(asker, &messages.FindNode{Target: key[:], Topic: true})); len(got) != 0 {
		t.Fatalf("the asker was handed its own registration: %v", got)
	}
	if s := stats(t, registrar); s.TopicRegistrations != 1 || s.TopicQueries != 6 {
		t.Fatalf("registrar's stats %+v: want 1 registration of 6 topic queries", s)
	}
}
