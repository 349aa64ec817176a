package actors_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// nodesNamed has node from ask node to for the nodes it knows closest to target (a FindNode request: the NODES reply
// other nodes' lookups get) and tells whether the reply names id.
func nodesNamed(t *testing.T, from, to *actors.Node, target routing.Key, id session.NodeID) bool {
	t.Helper()
	reply, err := from.Request(ctxTimeout(t, 5*time.Second), to.ID(), routing.Protocol, &messages.FindNode{Target: target[:]})
	if err != nil {
		t.Fatal(err)
	}
	nodes, ok := reply.(*messages.Nodes)
	if !ok {
		t.Fatalf("FindNode answered %T", reply)
	}
	for _, r := range nodes.GetRecords() {
		if bytes.Equal(r.GetId(), id.Bytes()) {
			return true
		}
	}
	return false
}

// A node this node bans leaves its routing table when Ban returns (shortly after: the routing actor is told), and
// other nodes' FindNode requests are no longer answered with it; a copy of its record relayed again is not taken.
// It used to stay in the table for the whole ban, handed to other nodes in NODES replies: every check and request
// of it failed with this node's own ErrBanned, spared as busy.
func TestABannedNodeLeavesTheRoutingTable(t *testing.T) {
	const a, b, c = 0, 1, 2
	ids := make([]*session.Identity, 3)
	nw := testkit.NewNetwork(t, 3, checkerConfig(-1, 0, ids, nil)) // no node checks its table
	node, asker, banned := nw.Nodes[a], nw.Nodes[b], nw.Nodes[c]
	if err := asker.AddAddress(node.ID(), node.Addr().Addr); err != nil {
		t.Fatal(err)
	}
	rec := record(t, ids[c], banned)
	node.AddRecords([]*messages.NodeRecord{rec})
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); _, ok := m[banned.ID()]; return ok },
		"a's table takes c")
	target := routing.KeyOf(banned.ID())
	if !nodesNamed(t, asker, node, target, banned.ID()) {
		t.Fatal("a's NODES reply does not name c before the ban")
	}
	if err := node.Ban(banned.ID(), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); _, ok := m[banned.ID()]; return !ok },
		"c, banned, to leave a's table")
	if nodesNamed(t, asker, node, target, banned.ID()) {
		t.Fatal("a's NODES reply names c, which a bans")
	}
	_, before := tableOf(t, node)
	node.AddRecords([]*messages.NodeRecord{rec}) // relayed again
	testkit.WaitFor(t, 5*time.Second, func() bool { _, st := tableOf(t, node); return st.GoneRecords > before.GoneRecords },
		"c's relayed record refused")
	m, st := tableOf(t, node)
	if _, in := m[banned.ID()]; in || st.Evictions != 0 || st.LookupEvictions != 0 {
		t.Fatalf("c in a's table %v, Evictions %d, LookupEvictions %d; want false, 0, 0", in, st.Evictions, st.LookupEvictions)
	}
}

// BanIP drops the nodes whose record's address is at the banned IP from the routing table (here every node of the
// test network: they all listen on 127.0.0.1).
func TestBanIPDropsTheNodesAtThatIPFromTheRoutingTable(t *testing.T) {
	ids := make([]*session.Identity, 3)
	nw := testkit.NewNetwork(t, 3, checkerConfig(-1, 0, ids, nil)) // no node checks its table
	node := nw.Nodes[0]
	node.AddRecords([]*messages.NodeRecord{record(t, ids[1], nw.Nodes[1]), record(t, ids[2], nw.Nodes[2])})
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); return len(m) == 2 }, "a's table takes b and c")
	ip, err := netip.ParseAddrPort(nw.Nodes[1].Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.BanIP(ip.Addr(), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); return len(m) == 0 },
		"the nodes at the banned IP to leave a's table")
}
